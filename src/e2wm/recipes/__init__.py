"""End-to-end jobs with a Python API: each takes its typed config and returns its result.

finetune (TrainConfig), compute_fisher / import_fisher (FisherConfig / FisherImportConfig), evaluate
(EvalConfig), collect_plans / collect_explore (PlansConfig / ExploreConfig), build (BuildConfig), report
(ReportConfig), run_demo (DemoConfig), export_merged (ExportConfig). The commands in e2wm.commands are thin
wrappers around them.
"""
