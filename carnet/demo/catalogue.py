"""Clinical reference tables: drugs, chronic and acute conditions, allergies, vaccines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Drug:
    atc: str
    display: str
    dosage: str


@dataclass(frozen=True)
class ChronicCondition:
    snomed: str
    display: str
    text: str
    min_age: int
    # Prevalence as (age threshold, probability) pairs; the highest threshold <= age wins.
    prevalence: tuple[tuple[int, float], ...]
    drugs: tuple[Drug, ...]
    specialist: str = "gp"
    female_factor: float = 1.0


@dataclass(frozen=True)
class AcuteCondition:
    snomed: str
    display: str
    text: str
    drug: Drug | None
    max_age: int = 120
    min_age: int = 0
    antibiotic: bool = False


_AMOXICILLIN: Final = Drug(
    "J01CA04", "amoxicilline", "Amoxicilline 1 g, 1 comprimé matin et soir pendant 6 jours"
)
AZITHROMYCIN: Final = Drug(
    "J01FA10",
    "azithromycine",
    "Azithromycine 250 mg, 2 comprimés le premier jour puis 1 comprimé par jour pendant 4 jours",
)
_PARACETAMOL: Final = Drug(
    "N02BE01",
    "paracétamol",
    "Paracétamol 1 g, 1 comprimé jusqu'à 3 fois par jour si douleur ou fièvre",
)

CHRONIC_CONDITIONS: Final = (
    ChronicCondition(
        "38341003",
        "Hypertensive disorder, systemic arterial (disorder)",
        "Hypertension artérielle",
        30,
        ((30, 0.05), (40, 0.2), (60, 0.45)),
        (
            Drug("C09AA05", "ramipril", "Ramipril 5 mg, 1 comprimé le matin"),
            Drug("C08CA01", "amlodipine", "Amlodipine 5 mg, 1 gélule par jour"),
        ),
        specialist="cardiologist",
    ),
    ChronicCondition(
        "44054006",
        "Diabetes mellitus type 2 (disorder)",
        "Diabète de type 2",
        35,
        ((35, 0.03), (45, 0.08), (60, 0.16)),
        (
            Drug(
                "A10BA02",
                "metformine",
                "Metformine 1000 mg, 1 comprimé matin et soir au milieu des repas",
            ),
        ),
        specialist="endocrinologist",
    ),
    ChronicCondition(
        "46635009",
        "Diabetes mellitus type 1 (disorder)",
        "Diabète de type 1",
        3,
        ((3, 0.006),),
        (
            Drug(
                "A10AE04",
                "insuline glargine",
                "Insuline glargine, 20 unités en injection sous-cutanée le soir",
            ),
        ),
        specialist="endocrinologist",
    ),
    ChronicCondition(
        "55822004",
        "Hyperlipidemia (disorder)",
        "Hyperlipidémie",
        35,
        ((35, 0.05), (50, 0.2)),
        (Drug("C10AA05", "atorvastatine", "Atorvastatine 20 mg, 1 comprimé le soir"),),
    ),
    ChronicCondition(
        "195967001",
        "Asthma (disorder)",
        "Asthme",
        3,
        ((3, 0.08),),
        (
            Drug(
                "R03AC02",
                "salbutamol",
                "Salbutamol 100 µg/dose, 2 inhalations en cas de gêne respiratoire",
            ),
        ),
        specialist="pulmonologist",
    ),
    ChronicCondition(
        "35489007",
        "Depressive disorder (disorder)",
        "Épisode dépressif",
        15,
        ((15, 0.07),),
        (Drug("N06AB10", "escitalopram", "Escitalopram 10 mg, 1 comprimé le matin"),),
        specialist="psychiatrist",
        female_factor=1.6,
    ),
    ChronicCondition(
        "197480006",
        "Anxiety disorder (disorder)",
        "Trouble anxieux",
        15,
        ((15, 0.05),),
        (
            Drug(
                "N05BA12",
                "alprazolam",
                "Alprazolam 0,25 mg, 1 comprimé le soir si besoin, 12 semaines au maximum",
            ),
        ),
        specialist="psychiatrist",
        female_factor=1.5,
    ),
    ChronicCondition(
        "40930008",
        "Hypothyroidism (disorder)",
        "Hypothyroïdie",
        20,
        ((20, 0.015),),
        (
            Drug(
                "H03AA01",
                "lévothyroxine sodique",
                "Lévothyroxine 75 µg, 1 comprimé le matin à jeun",
            ),
        ),
        specialist="endocrinologist",
        female_factor=4.0,
    ),
    ChronicCondition(
        "49436004",
        "Atrial fibrillation (disorder)",
        "Fibrillation atriale",
        60,
        ((60, 0.05), (75, 0.1)),
        (
            Drug(
                "B01AF01",
                "rivaroxaban",
                "Rivaroxaban 20 mg, 1 comprimé par jour au cours du repas du soir",
            ),
        ),
        specialist="cardiologist",
    ),
    ChronicCondition(
        "13645005",
        "Chronic obstructive lung disease (disorder)",
        "Bronchopneumopathie chronique obstructive",
        45,
        ((45, 0.03), (60, 0.07)),
        (Drug("R03BB04", "tiotropium", "Tiotropium 2,5 µg, 2 inhalations une fois par jour"),),
        specialist="pulmonologist",
    ),
    ChronicCondition(
        "84114007",
        "Heart failure (disorder)",
        "Insuffisance cardiaque",
        60,
        ((60, 0.03), (75, 0.08)),
        (Drug("C03CA01", "furosémide", "Furosémide 40 mg, 1 comprimé le matin"),),
        specialist="cardiologist",
    ),
    ChronicCondition(
        "64859006",
        "Osteoporosis (disorder)",
        "Ostéoporose",
        55,
        ((55, 0.03), (70, 0.06)),
        (
            Drug(
                "M05BA04",
                "acide alendronique",
                "Acide alendronique 70 mg, 1 comprimé une fois par semaine, à jeun",
            ),
        ),
        female_factor=4.0,
    ),
    ChronicCondition(
        "396275006",
        "Osteoarthritis (disorder)",
        "Arthrose",
        50,
        ((50, 0.1), (65, 0.25)),
        (_PARACETAMOL,),
    ),
    ChronicCondition(
        "37796009",
        "Migraine (disorder)",
        "Migraine",
        12,
        ((12, 0.05),),
        (Drug("N02CC01", "sumatriptan", "Sumatriptan 50 mg, 1 comprimé dès le début de la crise"),),
        female_factor=2.5,
    ),
    ChronicCondition(
        "235595009",
        "Gastroesophageal reflux disease (disorder)",
        "Reflux gastro-œsophagien",
        18,
        ((18, 0.08),),
        (Drug("A02BC01", "oméprazole", "Oméprazole 20 mg, 1 gélule le matin avant le repas"),),
    ),
    ChronicCondition(
        "26929004",
        "Alzheimer's disease (disorder)",
        "Maladie d'Alzheimer",
        70,
        ((70, 0.04), (80, 0.1)),
        (Drug("N06DA02", "donépézil", "Donépézil 5 mg, 1 comprimé le soir au coucher"),),
    ),
)

OBESITY: Final = ChronicCondition(
    "414916001", "Obesity (disorder)", "Obésité", 18, ((18, 0.0),), ()
)

ACUTE_AMBULATORY: Final = (
    AcuteCondition(
        "65363002", "Otitis media (disorder)", "Otite moyenne aiguë", _AMOXICILLIN, 12, 0, True
    ),
    AcuteCondition(
        "195662009", "Acute viral pharyngitis (disorder)", "Rhinopharyngite", _PARACETAMOL
    ),
    AcuteCondition(
        "43878008",
        "Streptococcal sore throat (disorder)",
        "Angine à streptocoque",
        _AMOXICILLIN,
        antibiotic=True,
    ),
    AcuteCondition("10509002", "Acute bronchitis (disorder)", "Bronchite aiguë", _PARACETAMOL),
    AcuteCondition("444814009", "Viral sinusitis (disorder)", "Sinusite virale", _PARACETAMOL),
    AcuteCondition(
        "68566005",
        "Urinary tract infectious disease (disorder)",
        "Infection urinaire",
        Drug("J01XX01", "fosfomycine", "Fosfomycine trométamol 3 g, 1 sachet en prise unique"),
        min_age=15,
    ),
)
ACUTE_EMERGENCY: Final = (
    AcuteCondition("44465007", "Sprain of ankle (disorder)", "Entorse de la cheville", None),
    AcuteCondition(
        "65966004", "Fracture of forearm (disorder)", "Fracture de l'avant-bras", _PARACETAMOL
    ),
    AcuteCondition(
        "233604007", "Pneumonia (disorder)", "Pneumopathie", _AMOXICILLIN, antibiotic=True
    ),
)
COVID: Final = AcuteCondition(
    "840539006",
    "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)",
    "COVID-19",
    _PARACETAMOL,
)

# (SNOMED code, display, French text, category, criticality, manifestation)
ALLERGIES: Final = (
    (
        "91936005",
        "Allergy to penicillin (finding)",
        "Allergie à la pénicilline",
        "medication",
        "high",
        ("126485001", "Urticaria (disorder)", "Urticaire"),
    ),
    (
        "91935009",
        "Allergy to peanut (finding)",
        "Allergie à l'arachide",
        "food",
        "high",
        ("39579001", "Anaphylaxis (disorder)", "Anaphylaxie"),
    ),
    (
        "300913006",
        "Shellfish allergy (finding)",
        "Allergie aux crustacés",
        "food",
        "low",
        ("271807003", "Eruption of skin (disorder)", "Éruption cutanée"),
    ),
    (
        "418689008",
        "Allergy to grass pollen (finding)",
        "Allergie aux pollens de graminées",
        "environment",
        "low",
        ("76067001", "Sneezing (finding)", "Éternuements"),
    ),
    (
        "232350006",
        "House dust mite allergy (finding)",
        "Allergie aux acariens",
        "environment",
        "low",
        ("267036007", "Dyspnea (finding)", "Dyspnée"),
    ),
)

# Vaccines: (CVX code, display, French text)
VACCINES: Final = {
    "hexavalent": ("146", "DTaP,IPV,Hib,HepB", "Vaccin hexavalent DTCaP-Hib-HepB"),
    "pcv13": ("133", "Pneumococcal conjugate PCV 13", "Vaccin pneumococcique conjugué 13-valent"),
    "mmr": ("03", "MMR", "Vaccin rougeole-oreillons-rubéole"),
    "dtap_ipv": ("130", "DTaP-IPV", "Rappel DTCaP-Polio"),
    "hpv": ("165", "HPV9", "Vaccin papillomavirus 9-valent"),
    "tdap": ("115", "Tdap", "Rappel dTcaP adulte"),
    "td": ("113", "Td (adult) preservative free", "Rappel dTP adulte"),
    "flu": (
        "150",
        "Influenza, injectable, quadrivalent, preservative free",
        "Vaccin grippe saisonnière",
    ),
    "covid": (
        "208",
        "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose",
        "Vaccin COVID-19 à ARNm",
    ),
}

# French schedule: (vaccine, age in months at injection)
CHILD_SCHEDULE: Final = (
    ("hexavalent", 2),
    ("pcv13", 2),
    ("hexavalent", 4),
    ("pcv13", 4),
    ("hexavalent", 11),
    ("pcv13", 11),
    ("mmr", 12),
    ("mmr", 16),
    ("dtap_ipv", 72),
    ("hpv", 132),
    ("hpv", 138),
    ("tdap", 300),
    ("td", 540),
    ("td", 780),
)


def prevalence(condition: ChronicCondition, age: float, gender: str) -> float:
    if age < condition.min_age:
        return 0.0
    probability = 0.0
    for threshold, value in condition.prevalence:
        if age >= threshold:
            probability = value
    if gender == "female":
        # Scale so the population average stays close to the base rate.
        probability *= 2 * condition.female_factor / (1 + condition.female_factor)
    else:
        probability *= 2 / (1 + condition.female_factor)
    return min(probability, 0.9)
