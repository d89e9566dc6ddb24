"""Korean transcripts whose WORD CHOICE carries valence and nothing else.

A sentence is `[opener] topic-clause evaluation-clause [evaluation-clause ...]`. Openers and
topics are emotionally neutral; each evaluation clause is drawn from the positive, neutral or
negative bank with probabilities that depend only on the utterance's valence
(`valence_word_probs`). Intensifiers ("진짜", "너무") are drawn independently of everything, so
the text says how pleasant something was but not how excited the speaker is (arousal stays in
the audio). `transcript()` then dresses the clean sentence the way KEMDy20 transcripts look:
`b/ l/ n/ u/ c/` markers, sometimes glued to a word (`...더라구.l/`), Latin letters and digits.

The long tail. Real transcripts also name people, places and things and carry numbers, English
and punctuation: KEMDy20 and KEMDy19 together hold 877 distinct characters over 2,201 texts, more
than a small text stand-in's vocabulary (koemo.text.standin). `with_long_tail()` puts such words
after the words of a transcript: names of a surname and a given name drawn from all 2,350
Hangul syllables of KS X 1001, loanwords, places, English words, numbers and quotes. They are
drawn after everything else of a transcript (the generator's later draws), so a transcript keeps
its sentence, valence words and markers, and they are neutral: none holds a word of the valence
banks.

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


# The long tail (module docstring).
SURNAMES = (
    "김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오", "서", "신", "권", "황",
    "안", "송", "류", "전", "홍", "고", "문", "양", "손", "배", "백", "허", "남", "심", "노", "하",
    "곽", "성", "차", "주", "우", "구", "민", "진", "나", "엄", "채", "원", "천", "방", "공", "현",
    "함", "변", "염", "여", "추", "도", "석", "선", "설", "마", "길", "연", "위", "표", "명", "기",
    "반", "왕", "금", "옥", "육", "인", "맹", "제", "모", "탁", "국", "편", "용", "예", "경", "봉",
    "남궁", "황보", "제갈", "선우", "독고",
)
NAME_TAILS = ("", "", "씨", "씨가", "씨랑", "한테", "네", "님", "선배", "쌤")
THINGS = (
    "넷플릭스", "유튜브", "스타벅스", "카카오톡", "인스타그램", "블루투스", "노트북", "키보드",
    "헬스장", "필라테스", "캠핑장", "드라이브", "콘서트", "뮤지컬", "페스티벌", "쇼핑몰",
    "엘리베이터", "에어컨", "냉장고", "택배", "월급", "적금", "펀드", "비트코인", "면접", "퇴근",
    "야근", "워크숍", "스트레스", "다이어트", "샌드위치", "파스타", "햄버거", "짜장면", "짬뽕",
    "탕수육", "김밥", "떡볶이", "삼겹살", "감자탕", "닭갈비", "곱창", "막걸리", "소주", "맥주",
    "와인", "쿠폰", "포인트", "환불", "배송", "지하철", "고속도로", "휴게소", "제주도", "강릉",
    "속초", "여수", "전주", "대구", "광주", "인천", "수원", "춘천", "경복궁", "한강", "남산타워",
    "롯데월드", "에버랜드", "편의점", "아이스크림", "치즈케이크", "마카롱", "도넛", "팝콘",
    "볼링장", "노래방", "찜질방", "PC방", "뷔페", "훠궈", "쌀국수", "팟타이", "크루아상", "와플",
    "스키장", "썰매", "튜브", "펭귄", "코끼리", "햄스터", "앵무새", "고슴도치", "캥거루",
)
ENGLISH = (
    "zoom", "wifi", "email", "quiz", "vlog", "jpg", "xbox", "keyboard", "meeting", "check",
    "deadline", "feedback", "weekend", "sale", "iPhone", "YouTube", "Netflix", "GS25", "USB",
    "ATM", "CGV", "OTT", "DM", "Wi-Fi", "H&M", "Q&A",
)
# How often a transcript gets each kind of word: ~960 distinct characters over the demo's 1,140
# synthetic KEMDy20 + KEMDy19 transcripts (the real two corpora: 877 over 2,201).
LONG_TAIL_RATES = {"name": 0.4, "thing": 0.2, "english": 0.08, "number": 0.12}


def ks_x_1001_syllables() -> tuple[str, ...]:
    """The 2,350 Hangul syllables of KS X 1001: those EUC-KR writes in two bytes (Python's codec
    spells the others as eight-byte jamo sequences; cp949 has them all in two)."""
    syllables = (chr(code) for code in range(ord("가"), ord("힣") + 1))
    return tuple(ch for ch in syllables if len(ch.encode("euc_kr")) == 2)


SYLLABLES = ks_x_1001_syllables()


def _name(rng: np.random.Generator) -> str:
    """A person: surname + one or two syllables of the whole KS X 1001 set, no bank word in it."""
    while True:
        given = "".join(_pick(rng, SYLLABLES) for _ in range(1 + int(rng.random() < 0.8)))
        name = _pick(rng, SURNAMES) + given + _pick(rng, NAME_TAILS)
        if not any(word in name for words in BANKS.values() for word in words):
            return name


def _number(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 100))
    return _pick(rng, (f"{n}번", f"{n}만 원", f"{1990 + n % 35}년", f"{n % 12 + 1}월 {n % 28 + 1}일",
                       f"{n / 10:.1f}", f"{n}%", f"{n}-{int(rng.integers(10, 99))}"))


def long_tail_words(rng: np.random.Generator) -> list[str]:
    """The long-tail words one transcript gets (often none), quoted or followed by a comma now
    and then."""
    draw = {"name": _name, "thing": lambda r: _pick(r, THINGS),
            "english": lambda r: _pick(r, ENGLISH), "number": _number}
    words = [draw[kind](rng) for kind, rate in LONG_TAIL_RATES.items() if rng.random() < rate]
    dressed = {0: "'{}'", 1: '"{}"', 2: "{},", 3: "{}~"}
    return [dressed.get(int(rng.integers(12)), "{}").format(word) for word in words]


def with_long_tail(text: str, rng: np.random.Generator) -> str:
    """`text` followed by its long-tail words (long_tail_words), as spoken afterthoughts
    (`...재미있었어 김하윤씨`). At the end they leave the valence words where they were: put
    anywhere, they pushed them past the demo's 32-piece max_length, and a ridge readout of the
    demo stand-in's states found valence at r 0.61 instead of 0.73 (0.76 without the tail)."""
    return " ".join([text] + long_tail_words(rng))


def bank_word_counts(text: str) -> dict[str, int]:
    """How many clauses of each bank a transcript contains (a lexicon check for tests/analysis)."""
    return {bank: sum(text.count(word) for word in words) for bank, words in BANKS.items()}
