"""Dashboard accounts: users and their roles, passwords, sessions, sign-in lock-out."""
