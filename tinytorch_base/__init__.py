"""What the library, the CLI and the scripts all stand on, and nothing more.

`tinytorch` (the framework), `tito` (the CLI) and the milestones and benchmarks each import from
here; this package imports only the standard library, and importing it never runs
`tinytorch/__init__`. That keeps two promises:

- the library knows nothing of the CLI: both read the manifest and write files through this
  package, not through each other;
- `tito` keeps working when a learner's half-written `tinytorch` cannot be imported.

Contents: `manifest.toml` (the one list of modules and milestones), `manifest` (its reader) and
`files` (atomic writes).
"""
