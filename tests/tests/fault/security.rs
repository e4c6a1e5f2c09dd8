//! Security checks (SEC-2, SEC-5): secrets never reach logs or status; record values never
//! change where a request goes.
