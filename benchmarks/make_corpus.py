#!/usr/bin/env python3
"""Generate a corpus of mixtures with their true sources, for blind-separation benchmarks.

Run (from the repository root, after ``make dev``; takes a few minutes on two cores)::

    .venv/bin/python benchmarks/make_corpus.py [--out benchmarks/corpus] [--seed 0] [--per-class 40] [-j 2]
        [--splits train,val,test]

or ``make corpus``. ``--splits`` makes only those splits' mixtures (``mixture_plans``: ``--per-class 134
--splits val``, 40 validation mixtures per class, is a larger validation set). Never run by CI or ``make test``; the output folder is git-ignored.

What it makes: ``--per-class`` mixtures (default 40: 16 train, 12 validation, 12 test) in each of
eight classes, ``<out>/<split>/<class>/<NNNN>/{mix,src1,src2[,src3]}.wav`` (32-bit float WAV, same
rate, channels and length; mix is the float32 sum of the sources, peak 0.8) and
``<out>/manifest.json`` (format: one entry per mixture with its split, class, rate, channels,
seconds and, per source, file, kind, material, gain_db and detail). Classes:

- talkers_mf: two talkers of different gender; talkers_same: two talkers of the same gender;
- speech_noise, speech_music: a talker with a noise, or with a music track;
- pitched_far: two pitched instruments, one in MIDI notes 28-55, the other in 60-90;
- pitched_same: two pitched instruments in one common range of at most 18 semitones within 36-84;
- drums_pitched: a drum kit and one pitched instrument;
- three_mixed: three sources of at least two kinds.

Each mixture: a length of 2-10 s, a rate of 16000, 22050 or 44100 Hz, mono or stereo (stereo: each
source, downmixed to mono, is panned with a random constant-power pan). Each source is scaled to
the same RMS, then given a gain uniform in -6..+6 dB relative to the first source (``gain_db``, the
first source 0.0), then all sources are scaled together so that the mix peaks at 0.8.

Material and its split. Every material (a speaker or voice, a GM program, a drum kit, a music track,
a noise recipe or recording) belongs to exactly one split, drawn from the seed (about 50/25/25 %
within each group: speakers by gender, programs by GM family, tracks, coloured noises, recorded
noises, drum kits); each split's mixtures use only that split's material. Things that share sound
go to the same split together: a GM program number (or drum kit number) with all three soundfonts
(MuseScore_General is partly built from FluidR3's samples), and music tracks that are versions of
one tune (``forest``, ``forest2``, ``forest3``; ``cave``/``cave_old``; ``airship_2``/``airship_remix``...).
``<out>/materials.json`` lists every split's material (used or not). At the end the manifest is
checked (a material in two splits stops the script with an error), and so are the files (rate,
channels, length, float subtype, mix == sum of the sources, peak <= 0.9).

Sources and licenses (all Debian packages):

- speech: espeak-ng (GPL-3+) English voice with its variants (``!v``; gender from
  ``espeak-ng --voices=variant``; the whisper variants are left out: no voicing, no gender);
  flite (BSD-like) voices kal16, awb, rms (male) and slt (female) (awb_time only says the time
  and kal is kal16 at 8 kHz: both left out); real recorded speakers of ``klettres-data``
  (GPL-2+), one per language, letters and syllables joined with short pauses; only the
  languages it ru pt_BR nl hu lt uk nb nds da he ar en (the others, en_GB fr de es cs ..., are
  kept for an independent check); gender estimated from the median f0 (librosa.pyin),
  written in ``detail``. Texts: made-up sentences below.
- music: the recorded tracks of ``supertux-data`` (music/**/*.ogg; GPL-2+ / CC-BY-SA, see the
  package's copyright file).
- instruments and drums: random MIDI phrases rendered by fluidsynth with FluidR3_GM.sf2 (MIT),
  MuseScore_General.sf3 (MIT) and TimGM6mb.sf2 (GPL-2); GM programs 0-118 (sound effects
  119-127 left out), kits 0 8 16 24 25 32 40 48 of bank 128 (the numbered near-copies of
  FluidR3's kits are left out); reverb and chorus off.
- noise: coloured noise recipes generated here (spectral slopes, bands, low/high pass, amplitude
  modulated), and recorded noise-like sounds of supertux-data (sounds/: rain, waterfall, fire,
  lava, fizz, sizzle, flame, thunder), looped to length.

Deterministic: the same seed gives byte-identical files (the WAV files are written here, without
libsndfile's time-stamped PEAK chunk).

Clean clips of each material (``--clips``, or ``make clips``)::

    .venv/bin/python benchmarks/make_corpus.py --clips [--out benchmarks/corpus] [--splits train,val,test]
        [--clips-per-material 3] [--clip-seconds 8] [--clip-rate 22050] [--corpus DIR] [--seed 0] [-j 2]

For every material of the chosen splits (the corpus' own split: same discovery, same seed),
``--clips-per-material`` mono clips (32-bit float WAV, peak 0.8) in ``<out>/clips/<split>/<material
slug>/NN.wav``, and ``<out>/clips/clips.json``: the settings and, per material, its id, split, kind
(speech, music, noise, drums, instrument), what to group it by (engine, voice, gender and klettres'
f0 for speech; soundfont, program and family for instruments; soundfont and program (the kit) for
drums; track and tune for music; recipe or file for noise), and its clips (file relative to
``<out>/clips``, seconds, detail, active fraction). The clips are not the mixtures' audio: new
random phrases (over the program's whole range) and drum patterns; sentences and espeak-ng speeds
that the split's mixtures did not use; klettres clips that they did not say (when at least
KLETTRES_MIN_POOL are left); track segments that overlap none that they played (replayed from the
plans) nor each other (a track with no room for one: one shorter clip of its longest free stretch,
if CLIP_MIN_SECONDS or more, else none); other offsets of recorded noise (the files are 1-26 s,
looped: a clip holds much of what the mixtures hold); new coloured-noise draws. Each clip is the most active of
CLIP_CANDIDATES draws (of six track segments), the first 90 % active. When ``--corpus`` (default
``--out``) holds the corpus, its materials.json must list the same material per split, and its
manifest.json the same mixtures and the same replayed klettres clips and track segments.
``--per-class`` must be the corpus' (it decides the mixtures to avoid). Each split's clips are
byte-identical from the seed, whichever splits one run makes.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

SPLITS = ("train", "val", "test")
FRACTIONS = (0.5, 0.25, 0.25)
CLASSES = ("talkers_mf", "talkers_same", "speech_noise", "speech_music",
           "pitched_far", "pitched_same", "drums_pitched", "three_mixed")
RATES = (16000, 22050, 44100)
RENDER_RATE = 44100
MIX_PEAK = 0.8

KLETTRES_DIR = "/usr/share/klettres"
KLETTRES_LANGS = ("it", "ru", "pt_BR", "nl", "hu", "lt", "uk", "nb", "nds", "da", "he", "ar", "en")
SUPERTUX = "/usr/share/games/supertux2"
NOISE_FILES = ("rain.wav", "waterfall.wav", "fire.ogg", "lava.wav", "fizz.wav", "sizzle.ogg",
               "flame.wav", "thunder.wav")
SOUNDFONTS = {
    "FluidR3_GM": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "MuseScore_General": "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
}
FLITE_VOICES = {"kal16": "M", "awb": "M", "rms": "M", "slt": "F"}
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
PITCHED_PROGRAMS = tuple(range(119))
FAMILIES = ("piano", "chromatic", "organ", "guitar", "bass", "strings", "ensemble", "brass",
            "reed", "pipe", "synth_lead", "synth_pad", "synth_fx", "ethnic", "percussive")
LOW = (28, 55)
HIGH = (60, 90)
SAME = (36, 84)

# Playable MIDI note range per GM program (roughly the real instrument's range).
_RANGE_EXCEPTIONS = {
    8: (60, 96), 9: (60, 96), 10: (60, 96), 11: (53, 89), 12: (45, 96), 13: (60, 96), 14: (60, 84),
    15: (48, 84), 32: (28, 60), 40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 55), 44: (36, 84),
    45: (36, 84), 46: (24, 96), 47: (40, 55), 52: (48, 79), 53: (48, 79), 54: (48, 79), 55: (48, 72),
    56: (55, 82), 57: (40, 72), 58: (28, 55), 59: (55, 82), 60: (41, 77), 61: (36, 84),
    64: (56, 87), 65: (49, 81), 66: (44, 76), 67: (36, 69), 68: (58, 91), 69: (52, 81), 70: (34, 72),
    71: (50, 91), 72: (74, 102), 104: (48, 84), 105: (48, 84), 106: (50, 84), 107: (48, 84),
    108: (48, 84), 109: (55, 84), 110: (55, 96), 111: (55, 84), 112: (72, 96), 113: (60, 84),
    114: (52, 84), 115: (60, 84), 116: (36, 60), 117: (40, 72), 118: (40, 72),
}
_FAMILY_RANGE = {"piano": (21, 100), "chromatic": (48, 96), "organ": (28, 96), "guitar": (40, 84),
                 "bass": (28, 60), "strings": (36, 90), "ensemble": (36, 90), "brass": (36, 84),
                 "reed": (44, 84), "pipe": (60, 96), "synth_lead": (36, 96), "synth_pad": (36, 96),
                 "synth_fx": (36, 96), "ethnic": (48, 84), "percussive": (48, 84)}
CHORDAL = {"piano", "chromatic", "organ", "guitar", "synth_pad", "ensemble"}
# Programs whose notes die away quickly: played in shorter notes without rests, so that they sound
# through most of the clip.
DECAYING = set(range(8, 16)) | set(range(24, 32)) | {45, 46, 47} | set(range(104, 109)) | set(range(112, 119))


def family(program: int) -> str:
    return FAMILIES[program // 8]


def program_range(program: int) -> tuple[int, int]:
    return _RANGE_EXCEPTIONS.get(program, _FAMILY_RANGE[family(program)])


SENTENCES = """\
The quick brown fox jumps over the lazy dog near the river bank.
She sells sea shells by the sea shore every summer morning.
A cold wind blew across the empty field after the harvest.
Please put the green book back on the top shelf when you are done.
The train to the coast leaves at half past seven tomorrow.
My grandfather kept bees behind the old stone barn.
We watched the storm roll in from the hills before dinner.
Turn left at the bakery and walk two blocks to the square.
The children built a tall tower out of wooden blocks.
He forgot his umbrella on the bus again this week.
Fresh bread and warm soup make a good winter supper.
The orchestra tuned their instruments while the hall filled up.
Every lighthouse on this coast has its own pattern of flashes.
Could you tell me where the nearest post office is?
The cat slept in a patch of sunlight on the kitchen floor.
Seven small boats drifted slowly across the quiet lake.
Nobody expected the old clock to start ticking again.
The recipe calls for two eggs, a cup of flour and some milk.
On clear nights you can see the planets low in the west.
The museum opens late on Thursdays during the summer.
A flock of geese flew south over the frozen marsh.
The painter mixed blue and yellow to get a soft green.
I would like a cup of tea with lemon, please.
The bridge was closed for repairs for most of the year.
Our neighbours planted tomatoes, beans and sunflowers.
The map showed a narrow path winding through the forest.
Rain drummed on the tin roof all through the night.
The library has a reading room with tall arched windows.
They sailed around the island in less than a day.
Bright lanterns hung from the trees along the avenue.
The mechanic said the engine needed a new belt.
Thunder rumbled somewhere far beyond the mountains.
Write your name at the top of the page before you begin.
The market sells cheese, olives and fresh figs on Saturdays.
Two owls called to each other across the valley.
The kettle whistled just as the phone began to ring.
A narrow staircase led up to the attic room.
The team practised in the gym until the lights went out.
The old photograph showed a village that no longer exists.
Wild strawberries grow along the edge of the meadow.
The pilot announced that we would land in twenty minutes.
Heavy snow fell on the town for three days straight.
The baker rises at four to light the ovens.
A red kite circled high above the chalk hills.
Please remember to close the gate behind you.
The students argued about the meaning of the poem.
The ferry rocked gently as it left the harbour.
My sister learned to play the violin when she was six.
The road climbs steeply for the last few miles.
He read the letter twice before he put it away.
The garden was full of roses and buzzing insects.
A long queue formed outside the cinema on opening night.
The river freezes over almost every January.
Nine tired hikers reached the hut just before dark.
The soup tastes better on the second day.
She painted the front door a bright cheerful yellow.
The ship's bell rang to mark the change of watch.
Leaves turned gold and red along the quiet lane.
The farmer counted his sheep as they came through the gate.
Our flight was delayed because of fog at the airport.
The baby laughed every time the dog sneezed.
An old man sold roasted chestnuts on the corner.
The waves had carved strange shapes into the cliffs.
Each morning she ran five miles along the beach.
The radio played soft music late into the night.
I found a silver coin under the sofa cushions.
The carpenter measured the board twice and cut it once.
Sparrows quarrelled over crumbs on the terrace.
The valley was filled with mist at sunrise.
He whistled a tune as he walked to the station.
The castle walls were thick enough to stop a cannon ball.
A gentle breeze carried the smell of cut grass.
The teacher wrote the date neatly on the blackboard.
We ate our lunch on a rock overlooking the sea.
The fountain in the square was turned off for winter.
Her bicycle had a basket and a little silver bell.
The snowman melted slowly in the afternoon sun.
The detective noticed a small scratch on the window frame.
Twelve candles flickered on the birthday cake.
The streets were quiet after the festival ended.
The astronomer pointed the telescope at the moon.
A heavy door creaked open at the end of the hall.
The hens laid more eggs once the days grew longer.
The band played until well after midnight.
The path along the canal is lined with willows.
He kept his old letters in a tin box under the bed.
The scouts pitched their tents beside the stream.
The shop on the corner sells buttons and thread.
The mountain hut had a stove and four narrow bunks.
The wind turned the pages of the open newspaper.
Ripe apples fell from the tree with a soft thud.
The choir sang in the cathedral every Sunday evening.
She kept a diary of the birds she saw each day.
The tide came in and washed away our sandcastle.
The workshop smelled of sawdust and linseed oil.
A lonely dog barked somewhere in the distance.
The new bridge will open to traffic next spring.
He poured the coffee and sat down by the window.
The cows walked slowly back to the barn at dusk.
Autumn is the best season to visit the northern lakes.
The clockmaker repaired watches in a tiny shop.
A bright rainbow appeared after the shower.
The puppy chewed one of my favourite shoes.
The island has no cars, only bicycles and carts.
The travellers rested in the shade of an olive tree.
Frost covered the windows on the first cold morning.
The chess players sat in silence for nearly an hour.
The bakery window was full of cakes and tarts.
A stranger asked us the way to the old mill.
The canoe slid silently between the reeds.
The factory whistle blew at exactly noon.
My uncle tells the same jokes every holiday.
The crowd cheered when the runners crossed the line.
The lamp cast long shadows across the study.
We followed the tracks of a fox through the snow.
The violinist bowed and the audience applauded.
There is a small café at the top of the hill.
The boy skipped stones across the pond.
The sky turned orange and pink as the sun went down.
The guide explained how the cathedral was built.
The parcel arrived a day earlier than expected.
A family of ducks crossed the road in single file.
The wooden floor creaked under our footsteps.
The harbour was crowded with fishing boats.
She planted a row of tulips along the fence.
The ice on the pond was too thin to skate on.
Our car broke down halfway up the mountain pass.
The fisherman mended his nets on the quay.
A swarm of bees settled on the apple tree.
The old piano was badly out of tune.
The hikers shared their bread with a hungry goat.
The stars seemed brighter far away from the city.
The postman whistled as he sorted the letters.
He built a small cabin by the edge of the woods.
The tea shop serves scones with cream and jam.
A sudden gust of wind blew my hat into the river.
The pottery class made bowls, cups and tiny vases.
The lecture lasted longer than anyone had planned.
The kitten chased a ball of yarn under the table.
Our school trip took us to a castle by the sea.
The fire crackled and filled the room with warmth.
The sailors sang as they hauled in the ropes.
The meadow was bright with poppies and daisies.
She folded the map and put it in her pocket.
The street musicians played a lively tune.
A quiet village lay at the foot of the volcano.
The rain stopped just as we reached the shelter.
The gardener raked the leaves into a large pile.
My brother collects stamps from faraway countries.
The grey heron stood motionless in the shallows.
The bus driver waited for the last passenger.
The hotel had a view of the snowy peaks.
We heard the church bells ringing across the fields.
The lemonade was cold, sweet and a little sour.
The old road was paved with smooth round stones.
A thin line of smoke rose from the chimney.
He carried the heavy suitcase up three flights of stairs.
The orchard produces pears, plums and cherries.
The young pianist practised scales for an hour.
The goats climbed easily over the steep rocks.
Her grandmother knitted a scarf of bright blue wool.
The train rattled over the bridge and into the tunnel.
The baker gave the children a warm roll each.
The tent leaked a little during the storm.
We counted more than forty stars in a single minute.
The mayor opened the fair with a short speech.
The chef chopped the onions with great speed.
A lone cyclist rode along the coastal road.
The squirrel buried acorns all over the lawn.
The wedding party danced late into the evening.
The lighthouse keeper climbed the stairs each night.
A warm loaf of bread sat cooling on the table.
The cliffs were home to thousands of seabirds.
The children played tag in the school yard.
The violin case was lined with soft red velvet.
The mountain lake was so clear we could see the bottom.
Her laughter echoed through the empty house.
The fishermen returned with a boat full of herring.
The old tram still runs along the waterfront.
Dry leaves rustled under our feet in the park.
The fox slipped quietly into the hedge.
A single candle lit the narrow passage.
The shepherd whistled to call his dogs.
The printer jammed just before the deadline.
We found shells, pebbles and driftwood on the beach.
The windmill turned slowly in the evening breeze.
The toddler stacked the cups into a wobbly tower.
The harvest festival filled the village with music.
His watch stopped at exactly three o'clock.
The hills looked purple in the fading light.
A kind stranger helped us change the flat tyre.
The soup simmered gently on the back of the stove.
The swallows returned to the barn in early May.
The school choir rehearsed every Tuesday afternoon.
The moon rose large and yellow over the bay.
The cellar was cool and smelled of apples.
The cyclists stopped at the top of the pass for a rest.
The pianist played a slow and gentle waltz.
An old sailing ship was moored in the harbour.
The dog shook itself and sprayed water everywhere.
A row of poplars lined the road to the farm.
The little bakery sold out of bread by ten.
They walked along the river until the sun set.
The baby elephant stayed close to its mother.
The fog lifted and the town appeared below us.
The weather forecast promised sunshine for the weekend.
A hot air balloon drifted slowly over the fields.
The teacher read a story about a brave little mouse.
The orchestra played the final chord and the hall fell silent.
The snow crunched under our boots on the way home.
The clock tower chimed eleven times.
She carried a basket of eggs carefully down the hill.
The jam jars lined the pantry shelves in neat rows.
The storm knocked down two trees in the park.
A gentle rain fell on the rooftops of the old town.
The boys fished from the pier all afternoon.
The bookshop had a cat that slept in the window.
Quiet please, the concert is about to begin.
Numbers one, two, three, four and five were called out.
The temperature dropped sharply after sunset.
We missed the last bus and had to walk home.
The sculptor carved a horse out of white marble.
The forest was dark, damp and full of ferns.
Somebody left the gate open and the goats escaped.
The ship sailed north towards the icy islands.
The grocer weighed the apples on an old brass scale.
A bright kite danced above the dunes.
The night train arrived at the capital at dawn.
Please speak clearly and a little more slowly.
The barn owl hunted silently over the fields.
My friend baked a cake shaped like a castle.
The river flooded the low meadows in spring.
The referee blew the whistle to end the match.
The hills were covered with heather and gorse.
Tomorrow we will climb to the top of the ridge.
The garden gate squeaked every time it opened.
The girl read her book by the light of a torch.
The queen waved to the crowd from the balcony.
A spider spun its web between two branches.
The sun broke through the clouds in the afternoon.
Our kitchen smells of cinnamon every December.
The fishermen warned us that a storm was coming.
The boat rocked gently at its mooring.
The bees hummed busily in the lavender.
He paid for the newspaper with a handful of coins.
The desert was silent and very cold at night.
A white horse grazed in the field by the road.
The postcard showed a harbour full of coloured boats.
The museum guard yawned and checked his watch.
Our picnic was interrupted by a sudden shower.
The wind howled around the corners of the house.
The last leaves fell from the old oak tree.
""".splitlines()


# ---------------------------------------------------------------- material and splits

def track_unit(path: str) -> str:
    """The tune a supertux track belongs to: versions of one tune share a split."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = re.sub(r"^new_", "", stem)
    previous = None
    while previous != stem:
        previous = stem
        stem = re.sub(r"([_-]?\d+|_old|_remix|_?map)$", "", stem)
    return "tune:" + stem


def unit_of(material: str) -> str:
    """What must not be in two splits: a program or kit number with every soundfont, a tune with
    all its versions, else the material itself."""
    parts = material.split(":")
    if parts[0] in ("program", "drumkit"):
        return f"{parts[0]}:{parts[2]}"
    if parts[0] == "track":
        return track_unit(parts[2])
    return material


def assign_splits(materials: list[dict], seed: int) -> dict[str, str]:
    """Give every material (dict with "id", "group", optional "unit") one split.

    Within each group, the units (materials sharing a unit move together; default: the id) are
    shuffled with a generator drawn from the seed and the group's name, then cut about 50/25/25 %
    (at least one unit each in val and test). Returns {material id: split}. Raises ValueError for
    a group of fewer than three units or a material id given twice.
    """
    import numpy as np
    ids = [m["id"] for m in materials]
    if len(set(ids)) != len(ids):
        raise ValueError("a material is listed twice")
    groups: dict[str, dict[str, list[str]]] = {}
    for m in materials:
        groups.setdefault(m["group"], {}).setdefault(m.get("unit", m["id"]), []).append(m["id"])
    splits = {}
    for group in sorted(groups):
        units = sorted(groups[group])
        if len(units) < 3:
            raise ValueError(f"group {group} has {len(units)} units, fewer than the 3 splits")
        rng = np.random.default_rng([seed, zlib.crc32(group.encode())])
        order = [units[k] for k in rng.permutation(len(units))]
        n_val = max(1, round(len(units) * FRACTIONS[1]))
        n_test = max(1, round(len(units) * FRACTIONS[2]))
        n_train = len(units) - n_val - n_test
        for k, unit in enumerate(order):
            split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            for material in groups[group][unit]:
                splits[material] = split
    return splits


def split_materials(materials: list[dict], splits: dict[str, str]) -> dict[str, list[dict]]:
    return {s: [m for m in materials if splits[m["id"]] == s] for s in SPLITS}


def _pitched(pool):
    return [m for m in pool if m["kind"] == "instrument"]


def _can_span(material, lo, hi, width=12):
    a, b = program_range(material["program"])
    return min(b, hi) - max(a, lo) >= width


def class_problems(pool: list[dict]) -> list[str]:
    """Classes that one split's material (list of material dicts with "kind", and "gender" for
    speech, "program" for instruments) cannot build; [] when all eight can be built."""
    speech = [m for m in pool if m["kind"] == "speech"]
    genders = [m["gender"] for m in speech]
    kinds = {m["kind"] for m in pool}
    pitched = _pitched(pool)
    problems = []
    if not ("F" in genders and "M" in genders):
        problems.append("talkers_mf: needs a female and a male speaker")
    if not (genders.count("F") >= 2 or genders.count("M") >= 2):
        problems.append("talkers_same: needs two speakers of one gender")
    if not (speech and "noise" in kinds):
        problems.append("speech_noise: needs a speaker and a noise")
    if not (speech and "music" in kinds):
        problems.append("speech_music: needs a speaker and a track")
    if not (any(_can_span(m, *LOW) for m in pitched) and any(_can_span(m, *HIGH) for m in pitched)):
        problems.append("pitched_far: needs a low and a high instrument")
    if not same_register_pairs(pitched):
        problems.append("pitched_same: needs two instruments with a common range")
    if not (pitched and "drums" in kinds):
        problems.append("drums_pitched: needs a drum kit and an instrument")
    if not (speech and len(pitched) >= 1 and ("drums" in kinds or "noise" in kinds)):
        problems.append("three_mixed: needs speech, an instrument and drums or noise")
    return problems


def same_register_pairs(pitched: list[dict]) -> list[tuple[int, int]]:
    pairs = []
    for a in range(len(pitched)):
        for b in range(a + 1, len(pitched)):
            if pitched[a]["program"] == pitched[b]["program"]:
                continue
            (lo1, hi1), (lo2, hi2) = program_range(pitched[a]["program"]), program_range(pitched[b]["program"])
            if min(hi1, hi2, SAME[1]) - max(lo1, lo2, SAME[0]) >= 12:
                pairs.append((a, b))
    return pairs


def chosen_splits(argument: str) -> list[str]:
    """The splits that --splits names (comma-separated), in SPLITS' order; SystemExit for a name
    that is not a split."""
    chosen = [s for s in SPLITS if s in argument.split(",")]
    if not chosen or len(chosen) != len(set(argument.split(","))):
        raise SystemExit(f"make_corpus: --splits takes a comma-separated list of {', '.join(SPLITS)}")
    return chosen


def check_manifest(manifest: dict) -> None:
    """Raise ValueError when a material, or a unit of shared sound (see unit_of), appears in
    more than one split, or a mixture's id does not start with its split."""
    seen: dict[str, set] = {}
    for mixture in manifest["mixtures"]:
        if not mixture["id"].startswith(mixture["split"] + "/"):
            raise ValueError(f"{mixture['id']}: id does not start with its split {mixture['split']}")
        for source in mixture["sources"]:
            for key in {source["material"], unit_of(source["material"])}:
                seen.setdefault(key, set()).add(mixture["split"])
    shared = sorted(f"{k} in {', '.join(sorted(v))}" for k, v in seen.items() if len(v) > 1)
    if shared:
        raise ValueError("material in more than one split: " + "; ".join(shared))


def check_files(out: str, manifest: dict) -> list[str]:
    """Problems with the written files: each mixture's mix and sources must be float WAV files of
    its rate, channels and length, the mix the float32 sum of the sources, peaking at most 0.9."""
    import numpy as np
    import soundfile as sf
    problems = []
    for mixture in manifest["mixtures"]:
        folder = os.path.join(out, mixture["dir"])
        signals = []
        for name in ["mix.wav"] + [s["file"] for s in mixture["sources"]]:
            info = sf.info(os.path.join(folder, name))
            if (info.samplerate, info.channels, info.frames, info.subtype) != (
                    mixture["rate"], mixture["channels"], round(mixture["seconds"] * mixture["rate"]), "FLOAT"):
                problems.append(f"{mixture['id']}/{name}: {info.samplerate} Hz, {info.channels} ch, "
                                f"{info.frames} frames, {info.subtype}")
            signals.append(sf.read(os.path.join(folder, name), dtype="float32", always_2d=True)[0])
        total = signals[1].copy()
        for x in signals[2:]:
            total = total + x
        if signals[0].shape != total.shape or not np.array_equal(signals[0], total):
            problems.append(f"{mixture['id']}: mix.wav is not the sum of the sources")
        if np.abs(signals[0]).max() > 0.9:
            problems.append(f"{mixture['id']}: mix peaks at {np.abs(signals[0]).max():.3f}")
    return problems


# ---------------------------------------------------------------- discovering material

def soundfont_presets(path: str) -> set[tuple[int, int]]:
    """(bank, program) of every preset in an SF2/SF3 file (its phdr chunk)."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b"phdr")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    out = set()
    for k in range(size // 38 - 1):
        record = data[at + 8 + 38 * k: at + 8 + 38 * (k + 1)]
        program, bank = struct.unpack("<HH", record[20:24])
        out.add((bank, program))
    return out


def espeak_variants() -> list[tuple[str, str]]:
    text = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    out = []
    for line in text.splitlines()[1:]:
        m = re.match(r"\s*\d+\s+variant\s+\S+/([MF])\s+.*?\s!v/(\S+)\s*(\(.*\))?\s*$", line)
        if not m or "whisper" in m.group(2) or re.search(r"!v/\S+ \S", line):
            continue
        out.append((m.group(2), m.group(1)))
    return sorted(set(out))


def klettres_clips(lang: str) -> list[str]:
    return sorted(glob.glob(f"{KLETTRES_DIR}/{lang}/alpha/*.ogg") + glob.glob(f"{KLETTRES_DIR}/{lang}/syllab/*.ogg"))


def klettres_f0(lang: str) -> float:
    """Median f0 (Hz) of a speaker: librosa.pyin over ten of their clips, high-passed at 70 Hz
    (some recordings hum), counting only voiced frames within 12 dB of the loudest frame (the
    recordings' background noise otherwise passes for a low voice)."""
    import numpy as np
    import librosa
    import scipy.signal
    clips = klettres_clips(lang)
    audio = np.concatenate([load_mono(c, 16000) for c in clips[:: max(1, len(clips) // 10)][:10]])
    audio = scipy.signal.sosfiltfilt(scipy.signal.butter(4, 70, "highpass", fs=16000, output="sos"), audio)
    f0, voiced, _ = librosa.pyin(audio, fmin=70, fmax=400, sr=16000, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0][: len(f0)]
    keep = voiced & (rms > rms.max() * 10 ** (-12 / 20))
    return float(np.median(f0[keep])) if keep.any() else float("nan")


def discover(jobs: int) -> tuple[list[dict], list[str]]:
    """Every material on this machine, and notes on what was left out."""
    notes = []
    materials = []
    for variant, gender in espeak_variants():
        materials.append({"id": f"speaker:espeak:{variant}", "kind": "speech", "engine": "espeak",
                          "voice": variant, "gender": gender, "group": f"speech:{gender}"})
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
    for voice, gender in FLITE_VOICES.items():
        if voice not in listed:
            raise SystemExit(f"make_corpus: flite voice {voice} is missing")
        materials.append({"id": f"speaker:flite:{voice}", "kind": "speech", "engine": "flite",
                          "voice": voice, "gender": gender, "group": f"speech:{gender}"})
    notes.append("flite awb_time (says only the time) and kal (= kal16 at 8 kHz) left out; "
                 "espeak whisper variants and 'Mr serious' (space in its name) left out")
    from concurrent.futures import ProcessPoolExecutor
    langs = [lang for lang in KLETTRES_LANGS if klettres_clips(lang)]
    if len(langs) < len(KLETTRES_LANGS):
        raise SystemExit(f"make_corpus: klettres-data lacks {sorted(set(KLETTRES_LANGS) - set(langs))}")
    # the first here: librosa.pyin's numba helpers are compiled and cached on disk once, before the
    # workers load them (two first compiles at once left a cache that crashed every later run)
    f0s = [klettres_f0(langs[0])]
    with ProcessPoolExecutor(jobs) as pool:
        f0s += pool.map(klettres_f0, langs[1:])
    for lang, f0 in zip(langs, f0s):
        gender = "F" if f0 > 165 else "M"
        materials.append({"id": f"speaker:klettres:{lang}", "kind": "speech", "engine": "klettres",
                          "voice": lang, "gender": gender, "group": f"speech:{gender}",
                          "f0": round(f0, 1)})
    for path in sorted(glob.glob(f"{SUPERTUX}/music/**/*.ogg", recursive=True)):
        rel = os.path.relpath(path, f"{SUPERTUX}/music")
        materials.append({"id": f"track:supertux:{rel}", "kind": "music", "path": path,
                          "group": "track", "unit": track_unit(rel)})
    for name in NOISE_FILES:
        path = f"{SUPERTUX}/sounds/{name}"
        if not os.path.exists(path):
            raise SystemExit(f"make_corpus: {path} is missing")
        materials.append({"id": f"noise:supertux:{name}", "kind": "noise", "path": path,
                          "group": "noise:recorded"})
    for recipe in NOISE_RECIPES:
        materials.append({"id": f"noise:coloured:{recipe}", "kind": "noise", "recipe": recipe,
                          "group": "noise:coloured"})
    for sf_name, sf_path in SOUNDFONTS.items():
        presets = soundfont_presets(sf_path)
        for program in PITCHED_PROGRAMS:
            if (0, program) in presets:
                materials.append({"id": f"program:{sf_name}:{program}", "kind": "instrument",
                                  "soundfont": sf_name, "program": program,
                                  "group": f"program:{family(program)}", "unit": f"program:{program}"})
        for kit in DRUM_KITS:
            if (128, kit) in presets:
                materials.append({"id": f"drumkit:{sf_name}:{kit}", "kind": "drums",
                                  "soundfont": sf_name, "program": kit, "group": "drumkit",
                                  "unit": f"drumkit:{kit}"})
    return materials, notes


# ---------------------------------------------------------------- planning

NOISE_RECIPES = ("slope-2.0", "slope-1.5", "slope-1.0", "slope-0.5", "slope+0.0", "slope+0.5",
                 "slope+1.0", "band250", "band500", "band1000", "band2000", "band4000",
                 "lowpass500", "lowpass1500", "lowpass3000", "highpass1000", "highpass3000",
                 "am2-slope-1.0", "am5-slope+0.0", "am9-band1000")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "pentatonic": (0, 2, 4, 7, 9), "dorian": (0, 2, 3, 5, 7, 9, 10),
          "harmonic_minor": (0, 2, 3, 5, 7, 8, 11), "blues": (0, 3, 5, 6, 7, 10)}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def phrase(rng, seconds: float, lo: int, hi: int, chordal: bool, decaying: bool) -> tuple[list, str]:
    """Random notes [(start s, length s, pitch, velocity)] in MIDI range lo..hi covering seconds:
    a random key and scale, tempo and note lengths, some rests (none where decaying), chords of
    three scale notes now and then where chordal."""
    root = int(rng.integers(12))
    scale_name = sorted(SCALES)[int(rng.integers(len(SCALES)))]
    pitches = [p for p in range(lo, hi + 1) if (p - root) % 12 in SCALES[scale_name]]
    beat = 60.0 / float(rng.uniform(70, 160))
    notes, t = [], 0.0
    k = int(rng.integers(len(pitches)))
    while t < seconds:
        length = beat * float(rng.choice([0.25, 0.5, 0.5, 1.0] if decaying else [0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
        if not decaying and rng.random() < 0.08 and t > 0:  # a rest
            t += length
            continue
        k = min(max(k + int(rng.integers(-3, 4)), 0), len(pitches) - 1)
        velocity = int(rng.integers(60, 121))
        hold = min(length * float(rng.uniform(0.8, 1.0)), seconds - t)
        chord = [0, 2, 4] if chordal and rng.random() < 0.3 else [0]
        for step in chord:
            if k + step < len(pitches):
                notes.append((round(t, 4), round(hold, 4), pitches[k + step], velocity))
        t += length
    detail = f"{NOTE_NAMES[root]} {scale_name}, notes {lo}-{hi}, {60 / beat:.0f} bpm, {len(notes)} notes"
    return notes, detail


def drum_pattern(rng, seconds: float) -> tuple[list, str]:
    """Random GM percussion notes (channel 10) covering seconds."""
    step = 60.0 / float(rng.uniform(80, 150)) / 4
    kick = [s for s in range(16) if s % 4 == 0 or rng.random() < 0.15]
    snare = [4, 12] + [s for s in range(16) if rng.random() < 0.08]
    hat_every = int(rng.choice([1, 2, 2, 4]))
    hat_note = int(rng.choice([42, 42, 44, 46, 51]))
    toms = (41, 43, 45, 47, 48, 50)
    notes, s = [], 0
    while s * step < seconds:
        t = round(s * step, 4)
        pos = s % 16
        bar = s // 16
        if pos in kick:
            notes.append((t, step, 36, int(rng.integers(90, 127))))
        if pos in snare:
            notes.append((t, step, int(rng.choice([38, 38, 40])), int(rng.integers(80, 127))))
        if pos % hat_every == 0:
            notes.append((t, step, hat_note, int(rng.integers(50, 100))))
        if pos >= 12 and bar % 2 == 1 and rng.random() < 0.5:
            notes.append((t, step, int(rng.choice(toms)), int(rng.integers(70, 120))))
        if pos == 0 and rng.random() < 0.3:
            notes.append((t, step, int(rng.choice([49, 57, 55])), int(rng.integers(70, 120))))
        s += 1
    return notes, f"{60 / step / 4:.0f} bpm, hats {hat_note} every {hat_every}, {len(notes)} hits"


def split_counts(per_class: int) -> dict[str, int]:
    train = per_class * 2 // 5
    val = (per_class - train) // 2
    return {"train": train, "val": val, "test": per_class - train - val}


def mixture_plans(pools: dict[str, list[dict]], per_class: int, seed: int, splits=SPLITS) -> list[dict]:
    """The plans of every mixture of the chosen splits, split_counts(per_class) of each class in
    each. Each is drawn from (seed, split, class, index) alone, so a larger per_class adds
    mixtures after the same ones: `--per-class 134 --splits val` gives 40 validation mixtures per
    class, the first 12 of them on the sources of a --per-class 40 corpus' 12."""
    counts = split_counts(per_class)
    return [plan_mixture(pools[split], split, cls, i, seed)
            for split in SPLITS if split in splits for cls in CLASSES for i in range(counts[split])]


THREE_TEMPLATES = (("speech", "instrument", "drums"), ("speech", "music", "noise"),
                   ("speech", "instrument", "noise"), ("instrument", "instrument", "drums"),
                   ("speech", "speech", "instrument"), ("speech", "drums", "noise"))


def plan_mixture(pool: list[dict], split: str, cls: str, index: int, seed: int) -> dict:
    """Everything random about one mixture, drawn from (seed, split, class, index)."""
    import numpy as np
    rng = np.random.default_rng([seed, SPLITS.index(split), CLASSES.index(cls), index])
    rate = int(rng.choice(RATES))
    channels = int(rng.choice([1, 2]))
    seconds = round(float(rng.uniform(2, 10)), 2)
    by_kind = {k: [m for m in pool if m["kind"] == k] for k in ("speech", "music", "instrument", "drums", "noise")}

    def pick(kind, exclude=(), where=None):
        options = [m for m in by_kind[kind] if m["id"] not in exclude and (where is None or where(m))]
        return options[int(rng.integers(len(options)))]

    def speakers(same_gender):
        if same_gender:  # either gender alike, though there are more male voices
            genders = [g for g in "FM" if sum(m["gender"] == g for m in by_kind["speech"]) >= 2]
            gender = genders[int(rng.integers(len(genders)))]
            first = pick("speech", where=lambda m: m["gender"] == gender)
        else:
            first = pick("speech")
        second = pick("speech", exclude={first["id"]},
                      where=lambda m: (m["gender"] == first["gender"]) == same_gender)
        return [first, second]

    if cls == "talkers_mf":
        picked = speakers(False)
    elif cls == "talkers_same":
        picked = speakers(True)
    elif cls == "speech_noise":
        picked = [pick("speech"), pick("noise")]
    elif cls == "speech_music":
        picked = [pick("speech"), pick("music")]
    elif cls == "pitched_far":
        low = pick("instrument", where=lambda m: _can_span(m, *LOW))
        high = pick("instrument", where=lambda m: _can_span(m, *HIGH) and m["program"] != low["program"])
        picked = [low, high] if rng.random() < 0.5 else [high, low]
    elif cls == "pitched_same":
        pitched = by_kind["instrument"]
        pairs = same_register_pairs(pitched)
        a, b = pairs[int(rng.integers(len(pairs)))]
        picked = [pitched[a], pitched[b]]
    elif cls == "drums_pitched":
        picked = [pick("drums"), pick("instrument")]
        if rng.random() < 0.5:
            picked.reverse()
    else:
        template = THREE_TEMPLATES[int(rng.integers(len(THREE_TEMPLATES)))]
        picked = []
        for kind in template:
            if kind == "speech" and any(m["kind"] == "speech" for m in picked):
                first = next(m for m in picked if m["kind"] == "speech")
                picked.append(pick("speech", exclude={first["id"]}))
            else:
                picked.append(pick(kind, exclude={m["id"] for m in picked}
                                   | {f"program:{s}:{m.get('program')}" for m in picked
                                      if m["kind"] == "instrument" for s in SOUNDFONTS}))
        order = rng.permutation(len(picked))
        picked = [picked[k] for k in order]

    same_window = None
    if cls == "pitched_same":
        (lo1, hi1), (lo2, hi2) = (program_range(m["program"]) for m in picked)
        lo, hi = max(lo1, lo2, SAME[0]), min(hi1, hi2, SAME[1])
        width = min(18, hi - lo)
        start = lo + int(rng.integers(hi - lo - width + 1))
        same_window = (start, start + width)
    sources = []
    for k, material in enumerate(picked):
        source = {"material": material["id"], "kind": material["kind"],
                  "gain_db": 0.0 if k == 0 else round(float(rng.uniform(-6, 6)), 2),
                  "pan": float(rng.uniform(0, np.pi / 2)), "seed": int(rng.integers(2 ** 31))}
        if material["kind"] == "instrument":
            a, b = program_range(material["program"])
            if cls == "pitched_far":
                lo, hi = LOW if material is low else HIGH
                lo, hi = max(lo, a), min(hi, b)
            elif cls == "pitched_same":
                lo, hi = same_window
            else:
                mid = (a + b) // 2
                lo, hi = max(a, mid - 12), min(b, mid + 12)
            source["notes"], source["detail"] = phrase(rng, seconds, lo, hi, family(material["program"]) in CHORDAL,
                                                        material["program"] in DECAYING)
            source["detail"] = f"{material['soundfont']} program {material['program']} ({family(material['program'])}): " + source["detail"]
        elif material["kind"] == "drums":
            source["notes"], detail = drum_pattern(rng, seconds)
            source["detail"] = f"{material['soundfont']} kit {material['program']}: {detail}"
        elif material["kind"] == "speech":
            source["sentences"] = [int(i) for i in rng.choice(len(SENTENCES), 8, replace=False)]
            source["speed"] = int(rng.integers(140, 191))
        sources.append(source)
    return {"id": f"{split}/{cls}/{index:04d}", "split": split, "class": cls, "rate": rate,
            "channels": channels, "seconds": seconds, "dir": f"{split}/{cls}/{index:04d}",
            "sources": sources}



# ---------------------------------------------------------------- audio

def write_wav(path: str, data, rate: int) -> None:
    """A 32-bit float WAV file of data (n, channels), byte for byte the same on every run."""
    import numpy as np
    data = np.ascontiguousarray(data, dtype="<f4")
    frames, channels = data.shape
    payload = data.tobytes()
    header = (b"RIFF" + struct.pack("<I", 4 + 26 + 12 + 8 + len(payload)) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHHH", 18, 3, channels, rate, rate * 4 * channels, 4 * channels, 32, 0)
              + b"fact" + struct.pack("<II", 4, frames) + b"data" + struct.pack("<I", len(payload)))
    with open(path, "wb") as f:
        f.write(header + payload)


def resample(x, rate_in: int, rate_out: int):
    import numpy as np
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    import soxr
    return soxr.resample(np.asarray(x, dtype=np.float64), rate_in, rate_out, quality="HQ")


def load_mono(path: str, rate: int):
    import soundfile as sf
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    return resample(x.mean(axis=1), sr, rate)


def trim_silence(x, rate: int, floor_db: float = -30):
    """x without its leading and trailing 10 ms frames quieter than floor_db below the loudest."""
    import numpy as np
    hop = max(1, rate // 100)
    frames = np.pad(x, (0, -len(x) % hop)).reshape(-1, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    return x[loud[0] * hop:(loud[-1] + 1) * hop] if loud.size else x


def active_fraction(x, rate: int) -> float:
    """Share of 100 ms frames whose RMS is within 35 dB of the loudest frame's."""
    import numpy as np
    hop = rate // 10
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    return float((rms > rms.max() * 10 ** (-35 / 20)).mean()) if rms.max() > 0 else 0.0


def fit(x, n: int):
    import numpy as np
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x))])


def coloured_noise(recipe: str, n: int, rate: int, rng):
    import numpy as np
    x = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    am = re.match(r"am(\d+)-(.*)", recipe)
    base = am.group(2) if am else recipe
    kind, value = re.match(r"([a-z]+)([-+0-9.]+)", base).groups()
    value = float(value)
    if kind == "slope":
        shape = (np.maximum(f, 20) / 1000) ** (value / 2)
    elif kind == "band":
        shape = np.exp(-0.5 * (np.log2(np.maximum(f, 1) / value) / 0.5) ** 2)
    elif kind == "lowpass":
        shape = 1 / np.sqrt(1 + (f / value) ** 8)
    else:
        shape = 1 / np.sqrt(1 + (value / np.maximum(f, 1e-3)) ** 8)
    y = np.fft.irfft(x * shape, n)
    if am:
        t = np.arange(n) / rate
        y *= (1 + 0.8 * np.sin(2 * np.pi * float(am.group(1)) * t + rng.uniform(0, 2 * np.pi))) / 1.8
    return y


def speech_pieces(material: dict, source: dict, rate: int, n: int, rng, tmp: str) -> tuple[list, list]:
    """Sentences (espeak-ng, flite) or letters and syllables (klettres) with short pauses, at least
    n samples in all: the pieces and what was said (the sentences, or the klettres clip files,
    drawn from source["clips"] where given, else from all of the speaker's clips)."""
    import numpy as np
    pieces, said, k = [np.zeros(int(rate * rng.uniform(0, 0.25)))], [], 0
    total = len(pieces[0])
    while total < n:
        if material["engine"] == "klettres":
            clips = source.get("clips") or klettres_clips(material["voice"])
            clip = clips[int(rng.integers(len(clips)))]
            piece = trim_silence(load_mono(clip, rate), rate)
            piece = piece / max(np.sqrt(np.mean(piece ** 2)), 1e-12) * 0.1  # the clips' levels differ widely
            said.append(clip)
        else:
            text = SENTENCES[source["sentences"][k % len(source["sentences"])]]
            wav = os.path.join(tmp, "say.wav")
            if material["engine"] == "espeak":
                cmd = ["espeak-ng", "-v", f"en-us+{material['voice']}", "-s", str(source["speed"]), "-w", wav, text]
            else:
                cmd = ["flite", "-voice", material["voice"], "-t", text, "-o", wav]
            subprocess.run(cmd, check=True, capture_output=True)
            piece = trim_silence(load_mono(wav, rate), rate)
            said.append(text)
            k += 1
        pause = np.zeros(int(rate * rng.uniform(0.1, 0.3) if material["engine"] == "klettres" else rate * rng.uniform(0.15, 0.45)))
        pieces += [piece, pause]
        total += len(piece) + len(pause)
    return pieces, said


def speech_detail(material: dict, source: dict, said: list) -> str:
    if material["engine"] == "klettres":
        return (f"klettres {material['voice']} (median f0 {material['f0']} Hz, so {material['gender']}): "
                + " ".join(os.path.splitext(os.path.basename(clip))[0] for clip in said))
    if material["engine"] == "espeak":
        return f"espeak-ng en-us+{material['voice']} ({material['gender']}), {source['speed']} wpm: " + " / ".join(said)
    return f"flite {material['voice']} ({material['gender']}): " + " / ".join(said)


def synth_speech(material: dict, source: dict, rate: int, n: int, rng, tmp: str):
    """Speech of n samples (see speech_pieces) and its detail text."""
    import numpy as np
    pieces, said = speech_pieces(material, source, rate, n, rng, tmp)
    return np.concatenate(pieces)[:n], speech_detail(material, source, said)


def read_segment(path: str, start: int, frames: int, rate: int, n: int):
    """frames of a file from frame start, downmixed, resampled to rate and cut or padded to n."""
    import soundfile as sf
    x, sr = sf.read(path, start=start, frames=frames, dtype="float64", always_2d=True)
    return fit(resample(x.mean(axis=1), sr, rate), n)


def music_segment(path: str, rate: int, n: int, rng) -> tuple:
    """The most active of up to six random segments of a track (the first that is 90 % active),
    n samples at rate: (samples, start frame, frames read, the file's rate)."""
    import soundfile as sf
    info = sf.info(path)
    want = int(n / rate * info.samplerate) + 1
    best = None
    for _ in range(6):
        start = int(rng.integers(max(1, info.frames - want)))
        x = read_segment(path, start, want, rate, n)
        if best is None or active_fraction(x, rate) > best[2]:
            best = (x, start, active_fraction(x, rate))
        if best[2] >= 0.9:
            break
    return best[0], best[1], want, info.samplerate


def track_detail(path: str, start: int, file_rate: int) -> str:
    return f"{os.path.relpath(path, SUPERTUX + '/music')} from {start / file_rate:.2f} s"


def make_source(material: dict, source: dict, rate: int, n: int, render: tuple | None, tmp: str):
    """One source, mono float64 of n samples at rate, and its detail text."""
    import numpy as np
    rng = np.random.default_rng(source["seed"])
    kind = material["kind"]
    if kind in ("instrument", "drums"):
        path, start, length = render
        raw = np.fromfile(path, dtype="<f4", count=2 * length, offset=8 * start)
        raw = fit(raw.reshape(-1, 2).mean(axis=1).astype(np.float64), length)
        return fit(resample(raw, RENDER_RATE, rate), n), source["detail"]
    if kind == "speech":
        return synth_speech(material, source, rate, n, rng, tmp)
    if kind == "music":
        x, start, _frames, file_rate = music_segment(material["path"], rate, n, rng)
        return x, track_detail(material["path"], start, file_rate)
    if "recipe" in material:
        return coloured_noise(material["recipe"], n, rate, rng), f"coloured noise {material['recipe']}"
    x = trim_silence(load_mono(material["path"], rate), rate)
    start = int(rng.integers(len(x)))
    x = np.concatenate([x[start:]] + [x] * (n // len(x) + 1))[:n]
    return x, f"{os.path.basename(material['path'])} from {start / rate:.2f} s, looped"


def build_mixture(task) -> tuple[dict, list[float]]:
    """Write one mixture's files; its manifest entry and each source's active fraction."""
    import numpy as np
    plan, materials, renders, out = task
    rate, channels = plan["rate"], plan["channels"]
    n = round(plan["seconds"] * rate)
    folder = os.path.join(out, plan["dir"])
    os.makedirs(folder, exist_ok=True)
    signals, details = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, source in enumerate(plan["sources"]):
            x, detail = make_source(materials[k], source, rate, n, renders[k], tmp)
            x = x / max(np.sqrt(np.mean(x ** 2)), 1e-12) * 10 ** (source["gain_db"] / 20)
            if channels == 2:
                x = x[:, None] * np.array([np.cos(source["pan"]), np.sin(source["pan"])])
                detail += f"; pan {np.degrees(source['pan']) / 90:.2f} (0 left, 1 right)"
            else:
                x = x[:, None]
            signals.append(x)
            details.append(detail)
    scale = MIX_PEAK / np.abs(sum(signals)).max()
    signals = [(x * scale).astype(np.float32) for x in signals]
    mix = signals[0].copy()
    for x in signals[1:]:
        mix = mix + x
    write_wav(os.path.join(folder, "mix.wav"), mix, rate)
    entry = {k: plan[k] for k in ("id", "split", "class", "rate", "channels", "seconds", "dir")}
    entry["sources"] = []
    for k, (source, x, detail) in enumerate(zip(plan["sources"], signals, details), 1):
        write_wav(os.path.join(folder, f"src{k}.wav"), x, rate)
        entry["sources"].append({"file": f"src{k}.wav", "kind": source["kind"], "material": source["material"],
                                 "gain_db": source["gain_db"], "detail": detail})
    return entry, [active_fraction(x.mean(axis=1), rate) for x in signals]


# ---------------------------------------------------------------- MIDI rendering

def midi_file(segments: list[tuple]) -> bytes:
    """A standard MIDI file (type 0, 2000 ticks a second) playing segments one after another:
    (start s, seconds, channel, program, notes); every segment ends with all sound off."""
    def tick(t):
        return round(t * 2000)
    events = []
    for start, seconds, channel, program, notes in segments:
        end = tick(start + seconds)
        if channel != 9:
            events.append((tick(start), 1, bytes([0xB0 | channel, 0, 0])))
        events.append((tick(start), 2, bytes([0xC0 | channel, program])))
        for t, length, pitch, velocity in notes:
            on = tick(start + t)
            if on >= end:
                continue
            events.append((on, 4, bytes([0x90 | channel, pitch, velocity])))
            events.append((min(max(tick(start + t + length), on + 1), end), 0, bytes([0x80 | channel, pitch, 0])))
        events.append((end, 3, bytes([0xB0 | channel, 120, 0])))
        events.append((end, 3, bytes([0xB0 | channel, 121, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    last_end = max(e[0] for e in events) + 2000

    def vlq(v):
        out = [v & 0x7F]
        v >>= 7
        while v:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        return bytes(reversed(out))
    track, now = bytearray(vlq(0) + b"\xff\x51\x03" + (500000).to_bytes(3, "big")), 0
    for t, _order, data in events:
        track += vlq(t - now) + data
        now = t
    track += vlq(last_end - now) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def render_all(plans: list[dict], materials: dict, folder: str, jobs: int, group=None) -> dict:
    """Render every instrument and drum source with fluidsynth, a few long files per soundfont, or
    with group (a function of plan, source index and material giving a file name), one file per
    name. Returns {(mixture id, source index): (raw file, start frame, frames)} at RENDER_RATE,
    stereo float32. A segment's samples depend a little on what the file played before it (fluidsynth
    reuses its voices), so only sources rendered in one file together always render alike."""
    from concurrent.futures import ThreadPoolExecutor
    requests: dict[str, list] = {}
    for plan in plans:
        for k, source in enumerate(plan["sources"]):
            material = materials[source["material"]]
            if material["kind"] in ("instrument", "drums"):
                requests.setdefault(material["soundfont"], []).append((plan, k, material))
    files = []
    for sf_name in sorted(requests):
        items = requests[sf_name]
        if group is None:
            files += [(f"{sf_name}-{c // 60}", sf_name, items[c:c + 60]) for c in range(0, len(items), 60)]
        else:
            named: dict[str, list] = {}
            for item in items:
                named.setdefault(group(*item), []).append(item)
            files += [(name, sf_name, named[name]) for name in sorted(named)]
    commands, index = [], {}
    for name, sf_name, chunk in files:
        segments, t = [], 0.0
        stem = os.path.join(folder, name)
        for plan, k, material in chunk:
            channel = 9 if material["kind"] == "drums" else 0
            segments.append((t, plan["seconds"], channel, material["program"], plan["sources"][k]["notes"]))
            index[(plan["id"], k)] = (stem + ".raw", round(t * RENDER_RATE), round(plan["seconds"] * RENDER_RATE))
            t = round(t + plan["seconds"] + 1.0, 2)
        with open(stem + ".mid", "wb") as f:
            f.write(midi_file(segments))
        commands.append(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-o", "synth.dynamic-sample-loading=1", "-T", "raw", "-O", "float",
                         "-r", str(RENDER_RATE), "-F", stem + ".raw", SOUNDFONTS[sf_name], stem + ".mid"])

    def run(cmd):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode or not os.path.exists(cmd[-3]):
            raise SystemExit(f"make_corpus: {' '.join(cmd)} failed: {done.stderr.strip()}")
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, commands))
    return index


# ---------------------------------------------------------------- clean clips of each material

CLIP_KINDS = ("speech", "music", "noise", "drums", "instrument")
CLIP_STREAM = zlib.crc32(b"clips")  # keeps the clips' random draws apart from the mixtures'
SENTENCES_PER_CLIP = 8
KLETTRES_MIN_POOL = 12  # a speaker with fewer clips unused by the mixtures: the clips draw from all
CLIP_MIN_SECONDS = 2.0  # a shorter track clip, where a track has no room for one of --clip-seconds
CLIP_CANDIDATES = 2  # draws per clip (phrases, patterns, syllables, offsets): the most active is kept


def slug(material_id: str) -> str:
    """A folder name for a material id: track:supertux:forest/forest2.ogg -> track_supertux_forest_forest2_ogg
    (no dots: a folder named like an audio file would be found by a search for clips)."""
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", material_id)


def _source_usage(task) -> tuple[str, object, str]:
    """Replay one mixture source's draws (as make_source does): (material id, what it took, detail)."""
    import numpy as np
    material, source, rate, n = task
    rng = np.random.default_rng(source["seed"])
    if material["kind"] == "music":
        _x, start, frames, file_rate = music_segment(material["path"], rate, n, rng)
        return material["id"], (start, start + frames), track_detail(material["path"], start, file_rate)
    with tempfile.TemporaryDirectory() as tmp:
        _pieces, said = speech_pieces(material, source, rate, n, rng, tmp)
    return material["id"], said, speech_detail(material, source, said)


def mixture_usage(plans: list[dict], by_id: dict, jobs: int = 1) -> tuple[dict, dict]:
    """What the mixtures of plans took from each material, so that its clips can take something else:
    {material id: {"sentences": set, "speeds": set}} for espeak-ng and flite speakers (from the plans),
    {"clips": set of files} for klettres speakers and {"segments": [(start, stop) frames]} for tracks
    (replayed: the clips and segments that build_mixture reads). Also {(mixture id, source index):
    detail} of the replayed sources, to check against a manifest."""
    from concurrent.futures import ProcessPoolExecutor
    usage: dict[str, dict] = {}
    replays, keys = [], []
    for plan in plans:
        for k, source in enumerate(plan["sources"]):
            material = by_id[source["material"]]
            used = usage.setdefault(material["id"], {})
            if material["kind"] == "music" or material.get("engine") == "klettres":
                replays.append((material, source, plan["rate"], round(plan["seconds"] * plan["rate"])))
                keys.append((plan["id"], k))
            elif material["kind"] == "speech":
                used.setdefault("sentences", set()).update(source["sentences"])
                if "speed" in source and material["engine"] == "espeak":
                    used.setdefault("speeds", set()).add(source["speed"])
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_source_usage, replays, chunksize=4))
    else:
        results = [_source_usage(task) for task in replays]
    details = {}
    for key, (material_id, took, detail) in zip(keys, results):
        if by_id[material_id]["kind"] == "music":
            usage[material_id].setdefault("segments", []).append(took)
        else:
            usage[material_id].setdefault("clips", set()).update(took)
        details[key] = detail
    return usage, details


def clip_plans(pool: list[dict], split: str, usage: dict, n_clips: int, seconds: float, seed: int) -> list[dict]:
    """Everything random about the clips of each material of one split's pool, drawn from (seed,
    material id): a list, one item per material, {"material", "split", "dir", "clips": n_clips lists
    of candidates}, the most active candidate making the clip (one candidate for espeak-ng and flite
    speakers and tracks, CLIP_CANDIDATES for the others). A candidate is a source dict shaped like a
    mixture's: "material", "kind", "seed", and "notes"/"detail" (instruments, drums: a new phrase
    over the program's whole range, or a new pattern), "sentences"/"speed" (espeak-ng, flite:
    sentences and speeds that the split's mixtures (usage, see mixture_usage) did not use where there
    are enough), "clips" (klettres: the speaker's clips the mixtures did not say, all of them when
    fewer than KLETTRES_MIN_POOL are left), "avoid" (tracks: the segments the mixtures played)."""
    import numpy as np
    plans = []
    for material in pool:
        rng = np.random.default_rng([seed, CLIP_STREAM, zlib.crc32(material["id"].encode())])
        used = usage.get(material["id"], {})
        kind = material["kind"]
        engine = material.get("engine")
        if engine in ("espeak", "flite"):
            fresh = [i for i in range(len(SENTENCES)) if i not in used.get("sentences", ())]
            stale = [i for i in range(len(SENTENCES)) if i in used.get("sentences", ())]
            order = [int(i) for i in rng.permutation(fresh)] + [int(i) for i in rng.permutation(stale)]
            speeds = [v for v in range(140, 191) if v not in used.get("speeds", ())] or list(range(140, 191))
        if engine == "klettres":
            everything = klettres_clips(material["voice"])
            unused = [c for c in everything if c not in used.get("clips", ())]
            voice_clips = unused if len(unused) >= KLETTRES_MIN_POOL else everything
        clips = []
        for c in range(n_clips):
            candidates = []
            for _ in range(1 if kind == "music" or engine in ("espeak", "flite") else CLIP_CANDIDATES):
                source = {"material": material["id"], "kind": kind, "seed": int(rng.integers(2 ** 31))}
                if kind == "instrument":
                    lo, hi = program_range(material["program"])
                    source["notes"], detail = phrase(rng, seconds, lo, hi, family(material["program"]) in CHORDAL,
                                                     material["program"] in DECAYING)
                    source["detail"] = f"{material['soundfont']} program {material['program']} ({family(material['program'])}): {detail}"
                elif kind == "drums":
                    source["notes"], detail = drum_pattern(rng, seconds)
                    source["detail"] = f"{material['soundfont']} kit {material['program']}: {detail}"
                elif engine == "klettres":
                    source["clips"] = voice_clips
                elif kind == "speech":
                    source["sentences"] = [order[(c * SENTENCES_PER_CLIP + k) % len(order)] for k in range(SENTENCES_PER_CLIP)]
                    source["speed"] = int(speeds[int(rng.integers(len(speeds)))])
                elif kind == "music":
                    source["avoid"] = sorted(used.get("segments", []))
                candidates.append(source)
            clips.append(candidates)
        plans.append({"material": material["id"], "split": split, "dir": f"{split}/{slug(material['id'])}",
                      "clips": clips})
    return plans


def free_gaps(frames: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The [lo, hi) frame ranges of a file of frames that overlap none of the taken [start, stop)."""
    gaps, lo = [], 0
    for start, stop in sorted(taken) + [(frames, frames)]:
        if min(start, frames) > lo:
            gaps.append((lo, min(start, frames)))
        lo = max(lo, stop)
    return gaps


def track_clip_segments(path: str, rate: int, seconds: float, avoid: list, n_clips: int, rng) -> tuple[list, int]:
    """Up to n_clips segments [(start, frames)] of a track, of seconds each, that overlap neither the
    avoided [start, stop) frames nor each other: the free gaps are cut into as many slots of seconds
    as fit (at a random offset each), and each clip is the most active of up to six random slots
    left (the first 90 % active). A track with no room for one: one shorter segment, its longest
    free gap, where that is CLIP_MIN_SECONDS or more. Returns (segments, the file's rate)."""
    import soundfile as sf
    info = sf.info(path)
    want = int(seconds * info.samplerate) + 1
    slots = []
    for lo, hi in free_gaps(info.frames, avoid):
        k = (hi - lo) // want
        if k:
            offset = int(rng.integers(hi - lo - k * want + 1))
            slots += [lo + offset + i * want for i in range(k)]
    if not slots:
        gaps = [(hi - lo, lo) for lo, hi in free_gaps(info.frames, avoid)]
        size, lo = max(gaps, default=(0, 0))
        return ([(lo, size)] if size >= CLIP_MIN_SECONDS * info.samplerate else []), info.samplerate
    segments = []
    for _ in range(min(n_clips, len(slots))):
        best = None
        for k in rng.permutation(len(slots))[:6]:
            active = active_fraction(read_segment(path, slots[k], want, rate, round(seconds * rate)), rate)
            if best is None or active > best[1]:
                best = (int(k), active)
            if best[1] >= 0.9:
                break
        segments.append((slots.pop(best[0]), want))
    return segments, info.samplerate


def clip_entry(material: dict, split: str, folder: str) -> dict:
    """A material's entry in clips.json (without its clips): what later code groups clips by."""
    entry = {"id": material["id"], "split": split, "kind": material["kind"], "dir": folder}
    if material["kind"] == "speech":
        entry.update(engine=material["engine"], voice=material["voice"], gender=material["gender"])
        if "f0" in material:
            entry["f0"] = material["f0"]
    elif material["kind"] in ("instrument", "drums"):
        entry.update(soundfont=material["soundfont"], program=material["program"])
        if material["kind"] == "instrument":
            entry["family"] = family(material["program"])
    elif material["kind"] == "music":
        entry.update(track=os.path.relpath(material["path"], SUPERTUX + "/music"), tune=track_unit(material["path"]))
    elif "recipe" in material:
        entry["recipe"] = material["recipe"]
    else:
        entry["file"] = os.path.basename(material["path"])
    return entry


def build_clips(task) -> dict:
    """Write one material's clips (mono float32 WAV, peak 0.8, NN.wav from 00) under root/plan["dir"]:
    of each clip's candidates, the most active (the first that is 90 % active); renders gives each
    candidate's fluidsynth render (see render_all) or None. Returns its clips.json entry, each clip
    with its file (relative to root), detail and active fraction."""
    import numpy as np
    plan, material, renders, root, rate, seconds = task
    n = round(seconds * rate)
    folder = os.path.join(root, plan["dir"])
    os.makedirs(folder, exist_ok=True)
    entry = clip_entry(material, plan["split"], plan["dir"])
    entry["clips"] = []
    clips = []
    if material["kind"] == "music":
        first = plan["clips"][0][0]
        segments, file_rate = track_clip_segments(material["path"], rate, seconds, first["avoid"], len(plan["clips"]),
                                                  np.random.default_rng(first["seed"]))
        clips = [(read_segment(material["path"], start, frames, rate, min(n, int(frames * rate / file_rate))),
                  track_detail(material["path"], start, file_rate)) for start, frames in segments]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for candidates, rendered in zip(plan["clips"], renders):
                best = None
                for source, render in zip(candidates, rendered):
                    x, detail = make_source(material, source, rate, n, render, tmp)
                    active = active_fraction(x, rate)
                    if best is None or active > best[2]:
                        best = (x, detail, active)
                    if best[2] >= 0.9:
                        break
                clips.append(best[:2])
    for c, (x, detail) in enumerate(clips):
        x = (x * (0.8 / max(np.abs(x).max(), 1e-12))).astype(np.float32)
        name = f"{c:02d}.wav"
        write_wav(os.path.join(folder, name), x[:, None], rate)
        entry["clips"].append({"file": f"{plan['dir']}/{name}", "seconds": round(len(x) / rate, 3), "detail": detail,
                               "active": round(active_fraction(x.astype(np.float64), rate), 3)})
    return entry


def _rendered_activity(task) -> float:
    material, source, render, rate, n = task
    return active_fraction(make_source(material, source, rate, n, render, "")[0], rate)


def render_candidates(clips: list[dict], by_id: dict, folder: str, rate: int, seconds: float, jobs: int) -> dict:
    """Render the instrument and drum candidates of clip plans (see clip_plans) with render_all, a
    candidate only where build_clips will look at it: where every earlier candidate of its clip is
    less than 90 % active. Each split's candidates go in files of their own (up to 60 segments of
    one soundfont each), so that its clips are the same whichever other splits are made in the same
    run. Returns {(plan dir/NN/candidate, 0): render}."""
    from concurrent.futures import ProcessPoolExecutor
    need = [(plan, c) for plan in clips if by_id[plan["material"]]["kind"] in ("instrument", "drums")
            for c in range(len(plan["clips"]))]
    renders = {}
    for j in range(CLIP_CANDIDATES):
        batch, names, counts = [], {}, {}
        for plan, c in need:
            batch.append({"id": f"{plan['dir']}/{c:02d}/{j}", "seconds": seconds, "sources": [plan["clips"][c][j]]})
            key = (plan["split"], by_id[plan["material"]]["soundfont"])
            counts[key] = counts.get(key, 0) + 1
            names[batch[-1]["id"]] = f"{key[0]}-{key[1]}-{(counts[key] - 1) // 60}"
        os.makedirs(os.path.join(folder, str(j)))
        renders.update(render_all(batch, by_id, os.path.join(folder, str(j)), jobs,
                                  group=lambda plan, k, material: names[plan["id"]]))
        if j + 1 == CLIP_CANDIDATES:
            break
        tasks = [(by_id[plan["material"]], plan["clips"][c][j], renders[(f"{plan['dir']}/{c:02d}/{j}", 0)],
                  rate, round(seconds * rate)) for plan, c in need]
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                activity = list(pool.map(_rendered_activity, tasks, chunksize=16))
        else:
            activity = [_rendered_activity(task) for task in tasks]
        need = [key for key, active in zip(need, activity) if active < 0.9]
    return renders


def make_clips(args) -> int:
    """The --clips mode: clean clips of every material of the chosen splits (see the --clips help)."""
    import time
    from concurrent.futures import ProcessPoolExecutor
    began = time.monotonic()
    chosen = chosen_splits(args.splits)
    materials, _notes = discover(args.jobs)
    splits = assign_splits(materials, args.seed)
    pools = split_materials(materials, splits)
    by_id = {m["id"]: m for m in materials}
    corpus = args.corpus or args.out
    checked = []
    if os.path.exists(os.path.join(corpus, "materials.json")):
        with open(os.path.join(corpus, "materials.json")) as f:
            listed = json.load(f)
        for split in chosen:
            if listed.get(split) != [m["id"] for m in pools[split]]:
                raise SystemExit(f"make_corpus: split {split} of {corpus}/materials.json is not this seed's "
                                 f"(seed {args.seed}): generate the clips with the corpus' own seed")
        checked.append("materials.json")
    plans = mixture_plans(pools, args.per_class, args.seed, chosen)
    usage, details = mixture_usage(plans, by_id, args.jobs)
    if os.path.exists(os.path.join(corpus, "manifest.json")):
        with open(os.path.join(corpus, "manifest.json")) as f:
            manifest = json.load(f)
        if manifest.get("seed") != args.seed:
            raise SystemExit(f"make_corpus: {corpus}/manifest.json has seed {manifest.get('seed')}, not {args.seed}")
        mixtures = {m["id"]: m for m in manifest["mixtures"] if m["split"] in chosen}
        if sorted(mixtures) != sorted(p["id"] for p in plans):
            raise SystemExit(f"make_corpus: {corpus}/manifest.json has other mixtures: give its --per-class")
        for plan in plans:
            if [s["material"] for s in plan["sources"]] != [s["material"] for s in mixtures[plan["id"]]["sources"]]:
                raise SystemExit(f"make_corpus: {plan['id']} is not the manifest's mixture")
        for (mixture_id, k), detail in details.items():
            written = mixtures[mixture_id]["sources"][k]["detail"]
            if not (written == detail or written.startswith(detail + "; pan ")):
                raise SystemExit(f"make_corpus: replaying {mixture_id} src{k + 1} gives '{detail}', "
                                 f"the manifest says '{written}'")
        checked.append("manifest.json (mixtures, and the replayed klettres clips and track segments)")
    print(f"found material and the mixtures' use of it in {time.monotonic() - began:.0f} s", file=sys.stderr)
    root = os.path.join(args.out, "clips")
    clips = [plan for split in chosen
             for plan in clip_plans(pools[split], split, usage, args.clips_per_material, args.clip_seconds, args.seed)]
    if len({plan["dir"] for plan in clips}) != len(clips):
        raise SystemExit("make_corpus: two materials share a clip folder name")
    for name in (*chosen, ".render"):
        if os.path.isdir(os.path.join(root, name)):
            shutil.rmtree(os.path.join(root, name))
    render_dir = os.path.join(root, ".render")
    renders = render_candidates(clips, by_id, render_dir, args.clip_rate, args.clip_seconds, args.jobs)
    print(f"rendered instruments in {time.monotonic() - began:.0f} s", file=sys.stderr)
    tasks = [(plan, by_id[plan["material"]],
              [[renders.get((f"{plan['dir']}/{c:02d}/{j}", 0)) for j in range(len(candidates))]
               for c, candidates in enumerate(plan["clips"])], root, args.clip_rate, args.clip_seconds) for plan in clips]
    with ProcessPoolExecutor(args.jobs) as pool:
        entries = list(pool.map(build_clips, tasks, chunksize=2))
    shutil.rmtree(render_dir)
    settings = {"version": 1, "seed": args.seed, "per_class": args.per_class, "rate": args.clip_rate,
                "seconds": args.clip_seconds, "clips_per_material": args.clips_per_material}
    index_path = os.path.join(root, "clips.json")
    kept = []
    if os.path.exists(index_path):
        with open(index_path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in settings} == settings:
            kept = [e for e in old["materials"] if e["split"] not in chosen]
        else:
            for split in {e["split"] for e in old["materials"]} - set(chosen):
                shutil.rmtree(os.path.join(root, split), ignore_errors=True)
    order = {s: k for k, s in enumerate(SPLITS)}
    index = dict(settings, materials=sorted(kept + entries, key=lambda e: (order[e["split"]], e["id"])))
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"clips in {root}: {args.clips_per_material} of {args.clip_seconds:g} s at {args.clip_rate} Hz "
          f"per material, seed {args.seed}; checked against {corpus}: {', '.join(checked) or 'nothing (no corpus there)'}")
    print(f"{'kind':<12}" + "".join(f"{s:>14}" for s in chosen) + "   (materials / clips)")
    for kind in CLIP_KINDS:
        cells = []
        for split in chosen:
            have = [e for e in entries if e["split"] == split and e["kind"] == kind]
            cells.append(f"{len(have):>7}/{sum(len(e['clips']) for e in have):<6}")
        print(f"{kind:<12}" + "".join(cells))
    short = [f"{e['id']} ({len(e['clips'])}: " + ", ".join(f"{c['seconds']:g}" for c in e["clips"]) + " s)"
             for e in entries if len(e["clips"]) < args.clips_per_material
             or any(c["seconds"] < args.clip_seconds for c in e["clips"])]
    print("materials with fewer or shorter clips (tracks without room): " + (", ".join(short) or "none"))
    quiet = [f"{c['file']} ({c['active']})" for e in entries for c in e["clips"] if c["active"] < 0.5]
    print("clips active in fewer than half of their 100 ms frames: " + (", ".join(quiet) or "none"))
    print(f"took {time.monotonic() - began:.0f} s")
    return 0


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    import time
    from concurrent.futures import ProcessPoolExecutor
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--clips", action="store_true",
                        help="instead of mixtures, write clean clips of every material of --splits into "
                             "OUT/clips/<split>/<material>/NN.wav and their index OUT/clips/clips.json")
    parser.add_argument("--splits", default=",".join(SPLITS), help="which splits (default all): their mixtures only, or with --clips their clips")
    parser.add_argument("--clips-per-material", type=int, default=3)
    parser.add_argument("--clip-seconds", type=float, default=8.0)
    parser.add_argument("--clip-rate", type=int, default=22050)
    parser.add_argument("--corpus", help="with --clips: the corpus whose materials.json and manifest.json the "
                                         "clips are checked against, where they exist (default: OUT)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    for tool in ("espeak-ng", "flite", "fluidsynth"):
        if shutil.which(tool) is None:
            raise SystemExit(f"make_corpus: {tool} is not installed")
    if args.clips:
        return make_clips(args)
    chosen = chosen_splits(args.splits)
    materials, notes = discover(args.jobs)
    splits = assign_splits(materials, args.seed)
    print(f"found material in {time.monotonic() - began:.0f} s", file=sys.stderr)
    pools = split_materials(materials, splits)
    for split in SPLITS:
        problems = class_problems(pools[split])
        if problems:
            raise SystemExit(f"make_corpus: split {split} cannot build: " + "; ".join(problems))
    by_id = {m["id"]: m for m in materials}
    plans = mixture_plans(pools, args.per_class, args.seed, chosen)
    for name in (*SPLITS, "manifest.json", "materials.json", ".render"):
        path = os.path.join(args.out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    render_dir = os.path.join(args.out, ".render")
    os.makedirs(render_dir)
    renders = render_all(plans, by_id, render_dir, args.jobs)
    print(f"rendered instruments in {time.monotonic() - began:.0f} s", file=sys.stderr)
    tasks = [(plan, [by_id[s["material"]] for s in plan["sources"]],
              [renders.get((plan["id"], k)) for k in range(len(plan["sources"]))], args.out) for plan in plans]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(build_mixture, tasks, chunksize=4))
    shutil.rmtree(render_dir)
    manifest = {"version": 1, "seed": args.seed, "mixtures": [entry for entry, _ in results]}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "materials.json"), "w") as f:
        json.dump({s: [m["id"] for m in pools[s]] for s in SPLITS}, f, indent=1)
        f.write("\n")
    check_manifest(manifest)
    problems = check_files(args.out, manifest)
    if problems:
        raise SystemExit("make_corpus: " + "; ".join(problems))
    quiet = [(entry["id"], k + 1, round(a, 2)) for entry, act in results for k, a in enumerate(act) if a < 0.5]
    print(f"corpus in {args.out}: {len(plans)} mixtures, seed {args.seed}")
    print(f"{'class':<15}" + "".join(f"{s:>7}" for s in SPLITS))
    for cls in CLASSES:
        print(f"{cls:<15}" + "".join(f"{sum(p['split'] == s and p['class'] == cls for p in plans):>7}" for s in SPLITS))
    print("material per split (available / used):")
    used = {s: {src["material"] for p in plans if p["split"] == s for src in p["sources"]} for s in SPLITS}
    for kind in ("speech", "music", "instrument", "drums", "noise"):
        cells = []
        for s in SPLITS:
            have = [m for m in pools[s] if m["kind"] == kind]
            cells.append(f"{len(have):>4}/{sum(m['id'] in used[s] for m in have):<4}")
        print(f"{kind:<15}" + " ".join(cells))
    for s in SPLITS:
        talkers = [m for m in pools[s] if m["kind"] == "speech"]
        print(f"{s} speakers: {sum(m['gender'] == 'F' for m in talkers)} F, {sum(m['gender'] == 'M' for m in talkers)} M")
    print("klettres speakers: " + ", ".join(f"{m['voice']} {m['f0']} Hz {m['gender']}" for m in materials if m.get("engine") == "klettres"))
    for note in notes:
        print("note: " + note)
    print("sources active in fewer than half of their 100 ms frames: " + (", ".join(f"{i} src{k} ({a})" for i, k, a in quiet) or "none"))
    print("no material in two splits; every mix is the sum of its sources, peak <= 0.9 (checked)")
    print(f"took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
