"""Great Expectations suites per dataset and one small runner returning a typed result.

- ``expectations.runner``: ``validate(frame, suite_name, expectations) -> SuiteResult`` on the GX
  1.x fluent API (ephemeral context, pandas data source, whole-dataframe batch).
- ``expectations.suites``: ``SUITES`` (one suite per historical dataset) and ``validate_dataset``.
- ``expectations.propose_errata``: lists the real rows that fail, in ``feeds/errata.csv`` form.

Framework-free core: never imports dagster; Great Expectations is imported only when validating.
"""
