"""Training data at scale: time `e2wm build` on 518 plan records and 2000 exploration episodes.

With --plans/--explore it times real collector output; for an input not given it first writes synthetic records in
the docs/formats.md schema (a six-room house, 2-3 characters wandering, grabbing and putting things for
--steps steps; 26 activities with plans of 2-12 steps), which exercise the same code paths.

    python benchmarks/build_speed.py                      # synthetic, 518 programs, 2000 episodes
    python benchmarks/build_speed.py --plans P --explore E --tokenizer smollm2-135m
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from e2wm import BuildConfig, build

ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "home office", "dining room"]
PORTABLE = ["apple", "cup", "plate", "book", "pillow", "towel", "mug", "remote control", "phone", "bowl", "spoon",
            "glasses", "toy", "candle", "sponge", "wallet"]
SURFACES = {"table": "on", "desk": "on", "shelf": "on", "nightstand": "on", "cabinet": "in", "drawer": "in",
            "basket": "in", "sofa": "on"}
ACTIVITIES = ["Watch TV", "Relax on sofa", "Turn on light", "Read book", "Work", "Browse internet", "Drink",
              "Pick up phone", "Pet cat", "Wash hands", "Listen to music", "Make coffee", "Go to sleep",
              "Set up table", "Cook some food", "Brush teeth", "Wash clothes", "Write an email", "Wash teeth",
              "Go to toilet", "Change TV channel", "Put groceries in Fridge", "Wash dishes by hand",
              "Wash dishes with dishwasher", "Take shower", "Get some water"]


def synthetic_episode(episode: int, steps: int) -> dict:
    rng = random.Random(episode)
    rooms = {str(i + 1): name for i, name in enumerate(ROOMS)}
    objects, places, spots = {}, {}, {}
    next_id = 100
    for room in rooms.values():
        for surface in rng.sample(list(SURFACES), 3):
            objects[str(next_id)], spots[str(next_id)] = surface, room
            places[str(next_id)] = {"room": room, "holder": None, "on": None, "inside": None}
            next_id += 1
    for thing in PORTABLE:
        target = rng.choice(list(spots))
        rel = SURFACES[objects[target]]
        objects[str(next_id)] = thing
        places[str(next_id)] = {"room": spots[target], "holder": None, "on": target if rel == "on" else None,
                                "inside": target if rel == "in" else None}
        next_id += 1
    characters = list(range(1, rng.choice([2, 3]) + 1))
    where = {c: rng.choice(ROOMS) for c in characters}
    initial = json.loads(json.dumps(places))
    record_steps = []
    for t in range(steps):
        actor = rng.choice(characters)
        room = where[actor]
        held = [o for o, p in places.items() if p["holder"] == actor]
        here = [o for o, p in places.items() if o not in spots and p["room"] == room and p["holder"] is None]
        local = [s for s, r in spots.items() if r == room]
        roll, changed = rng.random(), []
        if held and roll < 0.35:
            obj, target = rng.choice(held), rng.choice(local)
            rel = SURFACES[objects[target]]
            places[obj] = {"room": room, "holder": None, "on": target if rel == "on" else None,
                           "inside": target if rel == "in" else None}
            verb = "PUTBACK" if rel == "on" else "PUTIN"
            action, changed = f"[{verb}] <{objects[obj]}> ({obj}) <{objects[target]}> ({target})", [obj]
        elif here and len(held) < 2 and roll < 0.65:
            obj = rng.choice(here)
            places[obj] = {"room": room, "holder": actor, "on": None, "inside": None}
            action, changed = f"[GRAB] <{objects[obj]}> ({obj})", [obj]
        elif roll < 0.75:
            target = rng.choice(local)
            action = f"[{rng.choice(['WALK', 'OPEN', 'TOUCH'])}] <{objects[target]}> ({target})"
        else:
            rid = rng.choice([r for r, name in rooms.items() if name != room])
            where[actor] = rooms[rid]
            for obj in held:
                places[obj]["room"] = rooms[rid]
            action, changed = f"[WALK] <{rooms[rid]}> ({rid})", held
        record_steps.append({"t": t, "actor": actor, "action": action, "text": "", "success": True, "reason": None,
                             "actor_room": where[actor], "state": {o: dict(places[o]) for o in changed}})
    return {"episode": episode, "seed": episode, "scene": "synthetic", "characters": characters, "objects": objects,
            "rooms": rooms, "initial": initial, "steps": record_steps, "final": places}


def synthetic_plan(program: int) -> dict:
    rng = random.Random(program)
    activity = ACTIVITIES[program % len(ACTIVITIES)]
    room = rng.choice(ROOMS)
    things = rng.sample(PORTABLE, 2) + [rng.choice(list(SURFACES))]
    plan, text = [f"[WALK] <{room}> (1)"], [f"Walk to {room}."]
    for _ in range(rng.randint(1, 11)):
        thing = rng.choice(things)
        verb = rng.choice(["GRAB", "WALK", "SWITCHON", "OPEN"])
        plan.append(f"[{verb}] <{thing}> ({rng.randint(100, 200)})")
        text.append(f"{ {'GRAB': 'Grab', 'WALK': 'Walk to', 'SWITCHON': 'Switch on', 'OPEN': 'Open'}[verb]} {thing}.")
    goal = [f"{things[0]} || ON"]
    return {"program": f"file{program}", "activity": activity, "description": "", "scene": "synthetic",
            "goal": goal, "achieved": goal, "success": rng.random() < 0.9, "plan": plan, "plan_text": text,
            "items": [*things, room], "initial_text": [f"The {t} is in the {room}." for t in things],
            "human_plan_text": text, "simulations": 100, "seconds": 1.0, "seed": 0}


def write(path: Path, records) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans")
    parser.add_argument("--explore")
    parser.add_argument("--programs", type=int, default=518)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=25, help="steps per synthetic episode")
    parser.add_argument("--story-steps", type=int, help="as `e2wm build --story-steps`")
    parser.add_argument("--tokenizer", help="also time token percentiles with this model's tokenizer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plans = args.plans or write(tmp / "plans.jsonl", map(synthetic_plan, range(args.programs)))
        explore = args.explore or write(tmp / "explore.jsonl",
                                        (synthetic_episode(i, args.steps) for i in range(args.episodes)))
        tokenizer = None
        if args.tokenizer:
            from e2wm.models import load_tokenizer

            tokenizer = load_tokenizer(args.tokenizer)
        start = time.perf_counter()
        config = BuildConfig(plans=str(plans), explore=str(explore), out=str(tmp / "out"), holdout_activities=3,
                             story_steps=args.story_steps)
        stats = build(config, tokenizer)
        seconds = time.perf_counter() - start
    kind = {True: "collected", False: "synthetic"}
    print(f"{stats['inputs']['plans']['records']} {kind[bool(args.plans)]} plan records, "
          f"{stats['inputs']['explore']['episodes']} {kind[bool(args.explore)]} episodes -> built in {seconds:.1f} s")
    for name, info in stats["files"].items():
        tokens = info["input"].get("tokens", {})
        extra = f", input tokens p50 {tokens['p50']} / max {tokens['max']}" if tokens else ""
        print(f"  {name}: {info['examples']} examples, input chars p50 {info['input']['chars'].get('p50')}{extra}")


if __name__ == "__main__":
    main()
