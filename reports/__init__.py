"""`bench report`: the paper's tables and figures from run folders (entry point:
`bench.reports.build.build_report`; CLI: `bench.cli.report.report_command`)."""
