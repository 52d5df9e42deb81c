"""Training tasks from embodied experiences (the four E2WM formats).

records (read experience files) -> replay (check an episode against its own actions) -> stories (tell it)
-> plan_gen, act_recog, counting, object_path (one task each) -> fewshot (shots, held-out split)
-> build (the `e2wm build` command, stats.json).
"""
