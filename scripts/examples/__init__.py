"""Complete examples for the README section "Plug in your own env / your own agent" (run by the tests)."""
