"""Which kind of help an alarm calls for: the order an alarm-receiving centre answers its queue in.

Life-safety alarms (someone pressed for help, fell, or there is smoke) come first, then wandering (a
door at night, a door left open), then wellbeing (no activity, a missed check-in, vitals), and technical
faults last. A rule this table does not know (a plugin, a future rule) counts as technical: it is still
shown, never hidden, but it does not jump ahead of a fall.
"""

from __future__ import annotations

from typing import Literal, get_args

Category = Literal["life_safety", "wandering", "wellbeing", "technical"]
#: In the order the queue is answered.
CATEGORIES: tuple[Category, ...] = get_args(Category)

RULE_CATEGORIES: dict[str, Category] = {
    "sos": "life_safety",
    "fall": "life_safety",
    "smoke": "life_safety",
    "door_night": "wandering",
    "door_left_open": "wandering",
    "inactivity": "wellbeing",
    "missed_check_in": "wellbeing",
    "bed_exit": "wellbeing",
    "vitals": "wellbeing",
    "activity_baseline": "wellbeing",
    # The daily reassurance call (gateway/reassurance): a plea for help is answered like an SOS.
    "reassurance_help": "life_safety",
    "reassurance_no_answer": "wellbeing",
    # A planned home visit nobody checked in to (gateway/visits): an elder living alone not seen.
    "visit_missed": "wellbeing",
    "device_health": "technical",
    "channel_failing": "technical",
    # Duty (gateway/duty.py): nobody at the console is a gap in the alarm chain itself.
    "console_unstaffed": "technical",
    # The risk rules (docs/risks.md).
    "falling_from_bed": "life_safety",
    "scalds": "life_safety",
    "locked_zone_exit": "wandering",
    "repositioning_due": "wellbeing",
    "fever_cluster": "wellbeing",
}
#: Every rule that raises incidents, by the name it records them with.
KNOWN_RULES: tuple[str, ...] = tuple(RULE_CATEGORIES)


def category_of(rule: str) -> Category:
    return RULE_CATEGORIES.get(rule, "technical")


def category_rank(rule: str) -> int:
    """0 for life-safety … 3 for technical: sort the queue by it, then by when the alarm came."""
    return CATEGORIES.index(category_of(rule))
