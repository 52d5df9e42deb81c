"""English for actions ("Put cup in kitchen cabinet.") and facts ("The fridge is open.")."""

from e2wm.world.facts import Fact

_VERBS = {  # script verb -> English template ({0} first object, {1} second)
    "WALK": "Walk to {0}", "RUN": "Run to {0}", "FIND": "Find {0}", "GRAB": "Grab {0}", "OPEN": "Open {0}",
    "CLOSE": "Close {0}", "PUTBACK": "Put {0} on {1}", "PUTIN": "Put {0} in {1}", "PUTOBJBACK": "Put back {0}",
    "SWITCHON": "Switch on {0}", "SWITCHOFF": "Switch off {0}", "SIT": "Sit on {0}", "STANDUP": "Stand up",
    "LIE": "Lie on {0}", "TURNTO": "Turn to {0}", "LOOKAT": "Look at {0}", "WATCH": "Watch {0}",
    "POINTAT": "Point at {0}", "TOUCH": "Touch {0}", "DRINK": "Drink {0}", "EAT": "Eat {0}", "READ": "Read {0}",
    "TYPE": "Type on {0}", "POUR": "Pour {0} into {1}", "PLUGIN": "Plug in {0}", "PLUGOUT": "Plug out {0}",
    "DROP": "Drop {0}", "RELEASE": "Release {0}", "WASH": "Wash {0}", "RINSE": "Rinse {0}", "SCRUB": "Scrub {0}",
    "WIPE": "Wipe {0}", "SQUEEZE": "Squeeze {0}", "PUSH": "Push {0}", "PULL": "Pull {0}", "MOVE": "Move {0}",
    "PUTON": "Put on {0}", "PUTOFF": "Take off {0}", "CUT": "Cut {0}", "GREET": "Greet {0}", "SLEEP": "Sleep",
    "WAKEUP": "Wake up",
}
_STATES = {
    "OPEN": "open", "CLOSED": "closed", "ON": "on", "OFF": "off", "SITTING": "sitting", "LYING": "lying down",
    "CLEAN": "clean", "DIRTY": "dirty", "PLUGGED_IN": "plugged in", "PLUGGED_OUT": "unplugged",
}


def name(class_name: str) -> str:
    """'kitchen_cabinet' -> 'kitchen cabinet'."""
    return class_name.replace("_", " ")


def action_text(verb: str, objects: list[str]) -> str:
    """English for one action on class names: ('PUTIN', ['cup', 'kitchen_cabinet']) -> 'Put cup in kitchen cabinet.'"""
    template = _VERBS.get(verb, verb.capitalize() + (" {0}" if objects else ""))
    return template.format(*[name(o) for o in objects]) + "."


def verb_phrase(verb: str) -> str:
    """English for a verb alone, its template up to its first object: 'SWITCHOFF' -> 'switch off'."""
    template = _VERBS.get(verb, verb.capitalize())
    return template.split(" {", 1)[0].lower()


def fact_text(fact: Fact, names: dict[int, str], rooms: set[int]) -> str:
    """English for one fact: 'The fridge is open.', 'The cup is inside the kitchen cabinet.'"""
    if fact.relation == "CLOSE" and names[fact.target] == "character":  # the character first reads better
        fact = Fact(fact.target, fact.relation, fact.subject)
    subject = f"The {name(names[fact.subject])}"
    if fact.target is None:
        return f"{subject} is {_STATES.get(fact.relation, fact.relation.lower())}."
    target = f"the {name(names[fact.target])}"
    relation = fact.relation
    if relation == "INSIDE":
        return f"{subject} is {'in' if fact.target in rooms else 'inside'} {target}."
    if relation in ("HOLDS_RH", "HOLDS_LH"):
        return f"{subject} holds {target} in the {'right' if relation == 'HOLDS_RH' else 'left'} hand."
    phrase = {"ON": "is on", "CLOSE": "is close to", "FACING": "is facing", "BETWEEN": "is between"}
    return f"{subject} {phrase.get(relation, relation.lower())} {target}."
