//! Bad input (T43, T45, T46): each case names its file and line, leaves a documented job
//! state, and never crashes.
