"""Training tasks and evaluation files from embodied experiences (the E2WM formats).

records (read experience files) -> replay (check an episode against its own actions) -> stories (tell it)
-> plan_gen, act_recog, counting, object_path (the questions; balance picks which one a record is asked, towards
the released answer shares) -> fewshot (shots, held-out activities) and heldout (records kept out of training,
the evaluation files' shots and lines) -> build (the `e2wm build` command, stats.json); exclude (the programs
`--exclude-programs` keeps out of every file).
"""
