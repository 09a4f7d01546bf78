//! Nothing here: the integration tests live in tests.rs and its modules.
