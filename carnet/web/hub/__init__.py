"""The research hub's pages (the public register of data permits)."""
