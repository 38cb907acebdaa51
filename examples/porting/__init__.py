"""The porting guide's worked example (docs/porting.rst)."""
