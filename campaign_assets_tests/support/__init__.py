"""What tests and benchmarks share, each helper defined once.

- `ports`: a free port on 127.0.0.1.
- `processes`: child processes in their own groups, stopped by pid with deadlines;
  the descendants a process left; `wait_for`, polling with a deadline.
- `in_flight`: the peak of intervals open at once, per service from a sandbox call log.
- `sandbox`: the vendor sandbox in a subprocess; live objects counted by ledger marker.
- `dagster`: a temporary project, dagster-webserver and dagster-daemon, GraphQL.

Packaged with the project (``campaign_assets*``), so ``benchmarks`` imports it too.
"""
