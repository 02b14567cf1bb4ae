"""The person's sign-in pages: password, second factor (and, later, activation, objection,
forgotten password). The JSON /auth endpoints stay for scripts."""
