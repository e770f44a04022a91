"""A deterministic question–answer set for knowledge-base retrieval: short factual documents generated from four
templates (companies, scientists, towns, gadgets) about invented entities, and questions each answered by exactly
one document.

Two kinds of question per document, so that the search types can differ:
    named       names the entity and asks for one of its facts in other words ("Who runs Velmora Works?")
    described   does not name it; describes its one distinctive fact in a paraphrase ("Which company makes pumps
                that run on sunlight?"), where shared words are few and meaning matters
Names come from a seeded syllable generator, so there is no overlap with anything a model saw in training, and the
same seed always gives the same corpus. Used by `bench/knowledge_eval.py` and `tests/knowledge/`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PRODUCTS = [
    ("solar water pumps", "pumps that run on sunlight"),
    ("electric cargo bicycles", "battery-powered bikes for carrying goods"),
    ("illustrated picture books for toddlers", "books full of drawings for very young children"),
    ("industrial floor-cleaning robots", "machines that scrub factory floors by themselves"),
    ("organic fertiliser made from seaweed", "plant food produced from ocean algae"),
    ("noise-cancelling earplugs for musicians", "hearing protection for people who play instruments"),
    ("modular wooden tiny houses", "small homes assembled from timber sections"),
    ("satellite weather sensors", "instruments in orbit that measure the climate"),
    ("gluten-free sourdough bread", "wheat-free fermented loaves"),
    ("prosthetic hands controlled by muscle signals", "artificial hands driven by the wearer's muscles"),
    ("recycled plastic park benches", "outdoor seating built from reused plastic"),
    ("cold-brew coffee concentrate", "strong coffee extract steeped without heat"),
    ("braille e-readers", "digital reading devices for blind people"),
    ("vertical farming towers", "stacked indoor structures for growing crops"),
    ("hydrogen fuel cells for buses", "power units that let public coaches run on hydrogen"),
    ("wool hiking socks", "sheep-fibre stockings for walkers"),
    ("beehive monitoring scales", "devices that weigh bee colonies to track their health"),
    ("anti-counterfeit holographic labels", "shiny security stickers that stop fake goods"),
    ("ceramic water filters", "clay devices that purify drinking water"),
    ("open-source accounting software", "free bookkeeping programs anyone can modify"),
]
FIELDS = [
    ("marine biology", "the study of life in the ocean"),
    ("volcanology", "research on eruptions and lava"),
    ("glaciology", "the science of ice sheets"),
    ("paleobotany", "the study of fossil plants"),
    ("cryptography", "the mathematics of secret codes"),
    ("ornithology", "the scientific study of birds"),
    ("seismology", "the science of earthquakes"),
    ("mycology", "research on fungi and mushrooms"),
    ("astrophysics", "the physics of stars and galaxies"),
    ("epidemiology", "the study of how diseases spread"),
    ("hydrology", "the science of rivers and groundwater"),
    ("entomology", "the study of insects"),
    ("linguistics", "the scientific study of languages"),
    ("metallurgy", "the science of metals and alloys"),
    ("oceanography", "research on currents and the sea floor"),
    ("immunology", "the study of the body's defences against infection"),
    ("acoustics", "the physics of sound"),
    ("meteorology", "the science of weather forecasting"),
    ("archaeology", "the study of ancient human remains and artefacts"),
    ("neuroscience", "research on the brain and nerves"),
]
FAMOUS = [
    ("its annual cheese festival", "a yearly celebration of cheese"),
    ("a medieval stone bridge with nine arches", "an old masonry crossing from the Middle Ages"),
    ("the largest clock tower in the region", "the tallest timepiece tower around"),
    ("hot springs that stay warm all winter", "naturally heated pools in the cold season"),
    ("a museum of antique typewriters", "a collection of old writing machines"),
    ("its lavender fields", "purple flowering farmland with a strong scent"),
    ("a lighthouse painted in red spirals", "a coastal beacon with a striped red pattern"),
    ("a puppet theatre founded by sailors", "a marionette stage started by seafarers"),
    ("caves full of glowing worms", "underground caverns lit by luminous larvae"),
    ("a marathon run on frozen lakes", "a long-distance race across ice"),
    ("a library housed in a former train station", "books kept in an old railway building"),
    ("its salt mines", "underground pits where salt is extracted"),
    ("a kite-flying championship", "a competition for flying kites"),
    ("a botanical garden of desert cacti", "a park of spiny succulent plants from dry lands"),
    ("the oldest rowing club in the country", "the nation's most ancient boating society"),
    ("an observatory on a mountain peak", "a telescope station high on a summit"),
    ("its chocolate factories", "plants that make cocoa sweets"),
    ("a floating market on the river", "traders selling from boats on the water"),
    ("a windmill that still grinds flour", "a wind-powered mill still producing flour"),
    ("a jazz festival held in a quarry", "music concerts staged in an old stone pit"),
]
DEVICES = [
    ("noise-cancelling headphones", "headphones that block outside sound"),
    ("a robotic lawn mower", "a machine that cuts grass on its own"),
    ("a smart insulin pen", "a connected injector for diabetes medication"),
    ("a waterproof action camera", "a video recorder you can take under water"),
    ("a handheld air-quality monitor", "a pocket device that measures pollution"),
    ("a foldable electric scooter", "a collapsible battery-powered scooter"),
    ("a digital sourdough thermometer", "an electronic probe for fermented dough"),
    ("a solar-powered phone charger", "a sunlight battery pack for mobiles"),
    ("a sleep-tracking ring", "jewellery worn on a finger that records rest"),
    ("a portable espresso maker", "a travel machine for strong coffee"),
    ("a translating earpiece", "an in-ear gadget that interprets foreign speech"),
    ("a bicycle radar light", "a rear bike lamp that detects approaching cars"),
    ("a smart bird feeder with a camera", "a feeding station that photographs birds"),
    ("an e-ink weather display", "an electronic-paper screen showing the forecast"),
    ("a pocket metal detector", "a small device that finds buried coins"),
    ("a baby monitor with breathing sensors", "a crib device that watches an infant's breathing"),
    ("a mechanical keyboard with silent switches", "a quiet typing board with individual key mechanisms"),
    ("a drone for inspecting wind turbines", "a flying robot that checks wind power blades"),
    ("a plant soil moisture sensor", "a probe that tells when plants need water"),
    ("a heated ski glove", "a winter mitten with a built-in warmer"),
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "sul",
    "bri",
    "den",
    "fa",
    "gor",
    "hel",
    "ix",
    "ju",
    "mor",
    "nal",
    "pe",
    "quin",
    "ros",
    "tal",
    "ul",
    "var",
    "wen",
    "yor",
    "zel",
]
FIRST_NAMES = [
    "Mira",
    "Tomas",
    "Ilse",
    "Kofi",
    "Anouk",
    "Ravi",
    "Soren",
    "Lena",
    "Dario",
    "Yuki",
    "Petra",
    "Emeka",
    "Ines",
    "Bruno",
    "Hanna",
    "Olu",
]


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    doc_id: str
    kind: str
    """`named` or `described`."""


def _names(rng: random.Random, count: int, used: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if name not in used:
            used.add(name)
            names.append(name)
    return names


def build(per_template: int = 20, seed: int = 7) -> tuple[list[Document], list[Question]]:
    """`4 * per_template` documents (at most 80) and two questions per document."""
    rng = random.Random(seed)
    used: set[str] = set()
    docs: list[Document] = []
    questions: list[Question] = []
    n = min(per_template, 20)
    for i, (name, town, person) in enumerate(
        zip(_names(rng, n, used), _names(rng, n, used), _names(rng, n, used), strict=True)
    ):
        product, paraphrase = PRODUCTS[i]
        company, ceo, year, staff = f"{name} Works", f"{rng.choice(FIRST_NAMES)} {person}", 1950 + 3 * i, 40 + 17 * i
        doc_id = f"company-{i:02d}"
        docs.append(Document(doc_id, company, (
            f"{company} is a manufacturer based in the town of {town}. It was founded in {year} and today employs "
            f"{staff} people. The company makes {product}. Its chief executive is {ceo}, who joined as an engineer."
        )))  # fmt: skip
        questions.append(Question(f"Who runs {company}?", doc_id, "named"))
        questions.append(Question(f"Which company produces {paraphrase}?", doc_id, "described"))
    for i, (surname, town) in enumerate(zip(_names(rng, n, used), _names(rng, n, used), strict=True)):
        field, paraphrase = FIELDS[i]
        person, year = f"{rng.choice(FIRST_NAMES)} {surname}", 1890 + 4 * i
        doc_id = f"scientist-{i:02d}"
        docs.append(Document(doc_id, person, (
            f"{person} was a researcher born in {year} in {town}. {person.split()[0]} worked in {field} for four "
            f"decades and wrote {3 + i} books. A prize for young scientists now carries the name {surname}."
        )))  # fmt: skip
        questions.append(Question(f"Where was {person} born?", doc_id, "named"))
        questions.append(Question(f"Which scientist devoted a career to {paraphrase}?", doc_id, "described"))
    for i, (town, river) in enumerate(zip(_names(rng, n, used), _names(rng, n, used), strict=True)):
        famous, paraphrase = FAMOUS[i]
        doc_id = f"town-{i:02d}"
        docs.append(Document(doc_id, f"{town} (town)", (
            f"{town} is a town on the {river} river with about {2000 + 750 * i} inhabitants. Visitors come for "
            f"{famous}. The town hall dates from {1600 + 9 * i}."
        )))  # fmt: skip
        questions.append(Question(f"How many people live in {town}?", doc_id, "named"))
        questions.append(Question(f"Which town is known for {paraphrase}?", doc_id, "described"))
    for i, (model, maker) in enumerate(zip(_names(rng, n, used), _names(rng, n, used), strict=True)):
        device, paraphrase = DEVICES[i]
        product = f"{model} {100 + 10 * i}"
        doc_id = f"gadget-{i:02d}"
        docs.append(Document(doc_id, product, (
            f"The {product} is {device} sold by {maker} Electronics. It weighs {50 + 15 * i} grams and its "
            f"battery lasts {6 + i} hours. It went on sale in {2010 + i % 12}."
        )))  # fmt: skip
        questions.append(Question(f"How long does the battery of the {product} last?", doc_id, "named"))
        questions.append(Question(f"What is the name of {paraphrase}?", doc_id, "described"))
    return docs, questions
