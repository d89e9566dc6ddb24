"""Korean transcripts whose WORD CHOICE carries valence and nothing else.

A sentence is `[opener] topic-clause evaluation-clause [evaluation-clause ...]`. Openers and
topics are emotionally neutral; each evaluation clause is drawn from the positive, neutral or
negative bank with probabilities that depend only on the utterance's valence
(`valence_word_probs`). Intensifiers ("진짜", "너무") are drawn independently of everything, so
the text says how pleasant something was but not how excited the speaker is (arousal stays in
the audio). `transcript()` then dresses the clean sentence the way KEMDy20 transcripts look:
`b/ l/ n/ u/ c/` markers, sometimes glued to a word (`...더라구.l/`), Latin letters and digits.

Every word here is in KS X 1001, so each transcript encodes to cp949 (checked by the tests).
"""
from __future__ import annotations

import numpy as np

OPENERS = (
    "아", "음", "근데", "그래서", "그러니까", "어제", "오늘", "혹시", "있잖아", "그게",
    "아니", "저기", "그냥", "솔직히", "요즘",
)
# Latin letters and digits appear naturally in topics (KEMDy20 transcripts have them).
TOPICS = (
    "그 영화", "우리 회사", "이번 여행", "내 동생", "학교 앞 식당", "주말 계획", "새로 산 PC",
    "KTX 표", "3시 회의", "내 친구들", "그 카페", "어제 본 드라마", "우리 팀 프로젝트",
    "동아리 MT", "2번 문제", "새 집", "지난 시험", "그 노래", "부산 가는 길", "엄마 생일",
    "12월 공연", "그 가게 사장님", "SNS에 올린 사진", "점심 메뉴", "발표 준비", "강아지 산책",
    "5층 사무실", "버스 타는 데", "그 책", "아르바이트",
)
INTENSIFIERS = ("", "", "", "진짜 ", "너무 ", "정말 ", "완전 ", "좀 ", "되게 ")

# Evaluation clauses. The positive/negative banks hold the only valence-bearing words.
POSITIVE = (
    "재미있었어", "좋더라", "행복했어", "기분이 좋아졌어", "맛있었어", "감동적이었어",
    "최고였어", "고마웠어", "마음에 들어", "신나더라", "즐거웠어", "멋있더라", "예쁘더라",
    "뿌듯했어", "설레더라", "편안했어", "웃겼어", "기뻤어", "만족스러웠어", "잘 됐어",
    "좋았다니까", "사랑스럽더라", "든든했어", "반가웠어",
)
NEUTRAL = (
    "그냥 그랬어", "평소랑 비슷했어", "다음 주에 한대", "거기서 봤어", "아직 모르겠어",
    "별일 없었어", "세 시에 시작해", "그렇게 하기로 했어", "자리에 있었어", "이야기했어",
    "확인해 볼게", "그 사람이 했대", "내일 간대", "원래 그래", "두 개 샀어", "거기 있더라",
    "알려 줬어", "물어봤어", "바뀌었대", "기다리고 있어", "정해졌어", "전해 들었어",
    "한 번 더 봐야 돼", "끝났대",
)
NEGATIVE = (
    "짜증났어", "속상했어", "최악이었어", "기분이 나빴어", "힘들었어", "실망스러웠어",
    "화가 나더라", "슬펐어", "걱정돼", "싫더라", "답답했어", "우울했어", "억울했어",
    "지겨웠어", "서운했어", "괴로웠어", "불편했어", "망했어", "후회돼", "외로웠어",
    "무서웠어", "귀찮았어", "아팠어", "어이없더라",
)
BANKS = {"positive": POSITIVE, "neutral": NEUTRAL, "negative": NEGATIVE}
# Polite/colloquial endings that fit each clause ending ("좋더라" -> "좋더라구", "했어" -> "했어요").
TAILS_AFTER_DEORA = ("", "", "구", "고요")
TAILS_AFTER_VOWEL = ("", "", "요")
CONNECTORS = (" 그리고 ", " 근데 ", " 그래서 ", ". ", " 또 ")

LATIN_ASIDES = ("OK", "ㅋㅋ", "TV", "CU", "1시", "10분", "2호선", "A4", "PPT", "3명")

# How sharply valence moves word choice. Valence 4: ~95% of clauses positive; 3.5: ~2/3;
# 3 (neutral): ~70% neutral clauses, the rest split evenly. Sharper than a real speaker, so that
# a small text model on a random stand-in encoder learns valence within a CPU demo (at slope 2.2
# and mostly one clause, the demo's text regressor reached r ~0.33 and its text-only classifier
# barely beat the majority class; now r ~0.62).
VALENCE_SLOPE = 4.5
NEUTRAL_BIAS = 1.5


def valence_word_probs(valence: float) -> dict[str, float]:
    """Probability that one evaluation clause comes from each bank, given valence (1-5)."""
    scores = np.array([VALENCE_SLOPE * (valence - 3.0), NEUTRAL_BIAS, VALENCE_SLOPE * (3.0 - valence)])
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    return {"positive": float(weights[0]), "neutral": float(weights[1]), "negative": float(weights[2])}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _has_final_consonant(word: str) -> bool:
    """True when the last Hangul syllable has a batchim (so the topic particle is 은, not 는)."""
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 != 0


def _with_tail(clause: str, rng: np.random.Generator) -> str:
    tails = TAILS_AFTER_DEORA if clause.endswith("더라") else TAILS_AFTER_VOWEL
    return clause + _pick(rng, tails)


def _evaluation_clause(valence: float, rng: np.random.Generator) -> str:
    probs = valence_word_probs(valence)
    bank = ("positive", "neutral", "negative")[int(rng.choice(3, p=list(probs.values())))]
    intensifier = _pick(rng, INTENSIFIERS) if bank != "neutral" else ""
    return intensifier + _with_tail(_pick(rng, BANKS[bank]), rng)


def make_sentence(valence: float, rng: np.random.Generator) -> str:
    """One clean Korean sentence (no markers) whose evaluative words follow `valence`."""
    parts = []
    if rng.random() < 0.6:
        parts.append(_pick(rng, OPENERS) + " ")
    topic = _pick(rng, TOPICS)
    if rng.random() < 0.5:
        topic += "은" if _has_final_consonant(topic) else "는"
    parts.append(topic + " ")
    n_clauses = 1 + int(rng.choice(3, p=[0.2, 0.4, 0.4]))
    for i in range(n_clauses):
        if i:
            parts.append(_pick(rng, CONNECTORS))
        parts.append(_evaluation_clause(valence, rng))
    if rng.random() < 0.5:
        parts.append(_pick(rng, (".", "?", "!", "..")))
    return "".join(parts)


def transcript(valence: float, rng: np.random.Generator) -> str:
    """A KEMDy20-style transcript line: the sentence plus markers, sometimes glued to words."""
    text = make_sentence(valence, rng)
    if rng.random() < 0.15:
        words = text.split(" ")
        where = int(rng.integers(1, len(words) + 1))
        text = " ".join(words[:where] + [_pick(rng, LATIN_ASIDES)] + words[where:])
    if rng.random() < 0.35:
        text = _pick(rng, ("n/", "b/", "c/", "n/ b/")) + " " + text
    if rng.random() < 0.08:
        words = text.split(" ")
        where = int(rng.integers(1, len(words)))
        text = " ".join(words[:where] + ["u/"] + words[where:])
    roll = rng.random()
    if roll < 0.12:
        text = text + _pick(rng, (".l/", "l/", "b/"))  # glued: `...더라구.l/`
    elif roll < 0.3:
        text = text + " " + _pick(rng, ("l/", "b/", "n/"))
    return text


def bank_word_counts(text: str) -> dict[str, int]:
    """How many clauses of each bank a transcript contains (a lexicon check for tests/analysis)."""
    return {bank: sum(text.count(word) for word in words) for bank, words in BANKS.items()}
