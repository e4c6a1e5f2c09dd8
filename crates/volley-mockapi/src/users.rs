const FIRST: [&str; 10] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim",
];
const LAST: [&str; 5] = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov"];
const CITIES: [&str; 5] = ["Oslo", "Lisbon", "Kyoto", "Quito", "Accra"];
const PLANS: [&str; 3] = ["free", "team", "enterprise"];

/// One of the 50 built-in users (10 first names × 5 last names), picked by a stable hash of
/// the id, with the id echoed.
pub(crate) fn user_json(id: &str) -> serde_json::Value {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let n = usize::try_from(h % 50).unwrap_or(0);
    let (first, last) = (FIRST[n % 10], LAST[n / 10]);
    serde_json::json!({
        "id": id,
        "name": format!("{first} {last}"),
        "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        "city": CITIES[n % 5],
        "plan": PLANS[n % 3],
    })
}
