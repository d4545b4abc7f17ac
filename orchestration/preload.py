"""Imported by the fork server of the step processes (``orchestration.defs.shared.execution.PRELOAD``): the code
location loaded and its jobs resolved once, so every step process, a fork of the server, starts with both
(resolving the pipeline job alone took 1-4 s a process)."""

from orchestration.definitions import defs

defs.get_repository_def().get_all_jobs()
