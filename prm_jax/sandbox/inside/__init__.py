"""Code that runs *inside* the sandbox: stdlib only, no prm_jax imports.

The host sends these modules' sources to each sandboxed worker, which loads them as the package
`sbx` (see `isolation.worker_command`). Modules:

  protocol  framing and the value codec shared by the judge and the program runner
  hygiene   per-run limits, killing leftovers, wiping per-run state
  program   the program process: loads the program, answers the judge's calls; IO runs
  judge     the judge process: runs the tests, never the program
  zygote    the process program processes are forked from (it never sees a job)
  server    the warm fork server: starts the judge and zygote, supervises and cleans up runs
"""
