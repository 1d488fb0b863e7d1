"""Helpers shared by test modules: real doubles and small utilities, no tests."""
