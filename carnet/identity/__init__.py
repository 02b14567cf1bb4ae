"""Identity rules for French health data (NIR / INS)."""
