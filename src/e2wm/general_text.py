"""A few paragraphs of plain general English (written for this project) for the demo's perplexity check.

The demo measures the general-ability cost of finetuning as the perplexity change on these texts, which
no stage trains on. They are deliberately far from household activities: history, science, nature,
travel and everyday reasoning. For real measurements use a large corpus (the paper: Pile validation).
"""

PARAGRAPHS = [
    "The history of the printing press is often told as the story of one man, but the machine grew out of "
    "many older crafts. Wine presses gave it its shape, metal workers knew how to cast small letters, and "
    "paper makers had spread across Europe a century before. What changed in the middle of the fifteenth "
    "century was the combination: movable type that could be set, printed, cleaned and set again. Within "
    "fifty years, printers were working in more than two hundred towns, and books that had once taken a "
    "scribe a year to copy could be produced by the hundred in a few weeks.",
    "Rivers shape the land slowly but without pause. Water picks up sand and small stones in the fast upper "
    "reaches, carries them downstream, and drops them where the current weakens. Over thousands of years "
    "this builds wide plains and deltas, which in turn attract farmers because the soil is deep and easy to "
    "work. Many of the oldest cities in the world stand near a river for this reason, and many of them have "
    "also learned to fear the floods that made their fields rich.",
    "A good scientific experiment is designed so that it could fail. The researcher states in advance what "
    "result would count against the idea, changes one thing at a time, and keeps everything else as steady "
    "as possible. Results are then repeated, ideally by other people in other places. This is slower than "
    "trusting a clever argument, but it has a great advantage: mistakes tend to be found, because the "
    "method invites others to look for them.",
    "Most birds that migrate travel at night. The air is cooler and calmer, predators are fewer, and the "
    "day can be spent feeding. To find their way they use several cues at once: the position of the sun at "
    "dusk, the pattern of the stars, the earth's magnetic field, and familiar landmarks such as coastlines "
    "and mountain ranges. Young birds on their first journey often follow an inborn direction and distance, "
    "and only later learn to correct their course.",
    "When the railway reached a small town in the nineteenth century, daily life changed in ways that are "
    "easy to forget. Clocks had to agree with each other, so local time gave way to standard time. Fresh "
    "fish could be sold far from the sea, newspapers arrived on the morning they were printed, and people "
    "could visit relatives in a day instead of a week. Some towns grew quickly around their stations, while "
    "others that the line had passed by slowly lost their markets.",
    "The human heart beats roughly one hundred thousand times a day. Each beat begins with a small electric "
    "signal from a cluster of cells in the upper right chamber, which spreads across the muscle and makes "
    "it contract in a careful order: first the upper chambers, then the lower ones. Regular exercise makes "
    "the muscle stronger, so that a trained heart can pump the same amount of blood with fewer beats.",
    "Learning a second language as an adult is hard, but not for the reasons people usually give. Adults "
    "are often better than children at learning grammar rules and new words quickly. What they find "
    "difficult is hearing and producing sounds that their first language does not use, and finding the "
    "time for the thousands of hours of listening that children get for free. Short daily practice tends to "
    "work better than long lessons once a week.",
    "Mathematics is sometimes described as the study of patterns. A child who notices that every even "
    "number can be split into two equal groups has already found a small theorem. Proof is the step that "
    "turns such an observation into knowledge: an argument that shows the pattern must hold in every case, "
    "not only in the cases that have been checked. This is why a single counterexample can overturn a "
    "belief that seemed safe for centuries.",
    "The weather over a few days can be forecast with some skill, but the climate of a region is a "
    "different question. Weather is the state of the atmosphere at a given time and place; climate is the "
    "long-run average and range of that weather over decades. A cold week does not say much about the "
    "climate, just as one low mark on a test says little about a student's year.",
    "Markets work best when buyers and sellers know what they are trading. If only the seller knows that a "
    "used car has a hidden fault, buyers become careful and offer less for every car, and the owners of "
    "good cars may then decide not to sell at all. Warranties, inspections and reputations exist largely to "
    "solve this problem, by giving the buyer a reason to trust what they cannot check themselves.",
]
