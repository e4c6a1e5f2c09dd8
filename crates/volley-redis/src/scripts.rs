use redis::Script;
use std::sync::LazyLock;

const FINISH: &str = include_str!("lua/finish.lua");

fn with_finish(body: &str) -> Script {
    Script::new(&format!("{FINISH}\n{body}"))
}

pub(crate) static COMMIT: LazyLock<Script> =
    LazyLock::new(|| with_finish(include_str!("lua/commit.lua")));
pub(crate) static FINISH_PUBLISHING: LazyLock<Script> =
    LazyLock::new(|| with_finish(include_str!("lua/finish_publishing.lua")));
pub(crate) static REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/register.lua")));
pub(crate) static PUBLISHED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/published.lua")));
pub(crate) static INPUT_ERROR: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/input_error.lua")));
pub(crate) static REDRIVE_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/redrive_add.lua")));
pub(crate) static REDRIVE_END: LazyLock<Script> =
    LazyLock::new(|| with_finish(include_str!("lua/redrive_end.lua")));
pub(crate) static FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/forget.lua")));
pub(crate) static CONTROL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/control.lua")));
pub(crate) static PARTIAL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/partial.lua")));
pub(crate) static HOLD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/hold.lua")));
pub(crate) static SCHEMA: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/schema.lua")));
