"""A minimal RobotHow directory tree, for the world's unit tests and the `e2wm world` command tests."""


def _robothow(tmp_path, graph_text: str):
    scripts = tmp_path / "executable_programs" / "Scene_graph" / "g"
    graphs = tmp_path / "init_and_final_graphs" / "Scene_graph" / "g"
    scripts.mkdir(parents=True)
    graphs.mkdir(parents=True)
    (scripts / "file1_1.txt").write_text("Walk\nGo there\n\n[WALK] <kitchen> (1.2)\n")
    (graphs / "file1_1.json").write_text(graph_text)
    return tmp_path
