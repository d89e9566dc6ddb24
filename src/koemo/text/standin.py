"""An offline KoBERT stand-in: a sentencepiece model trained on the corpus' own transcripts with
KoBERT's special-id layout, plus a small random-weight BertModel in `save_pretrained` format.

Real KoBERT weights cannot be downloaded here (no model hub), yet every code path (tokenizer,
frozen encoder, state cache, text regressor) must run in tests and in the demo. The stand-in
keeps the interfaces and ids of KoBERT ([UNK]=0 [PAD]=1 [CLS]=2 [SEP]=3 [MASK]=4, pad id 1 in
BertConfig) and only shrinks sizes; its random encoder carries no linguistic knowledge, so the
text results of a stand-in run say nothing about KoBERT's.

Every character of the texts gets a piece of its own (character coverage 1.0: no text of the
corpus encodes to [UNK]). A configured `text.standin.vocab_size` too small to hold them (the
small configs' 800 against the 877 distinct characters of real KEMDy20 + KEMDy19) is raised to
exactly the pieces the characters need (`trained_vocab_size`); the size trained is recorded in
`standin.json` as `vocab_size_trained` (the encoder's `config.json` holds the pieces learned).
A size large enough is used as written, so such a build and every key derived from it are those
of a build before the raise existed.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

from koemo.config.schema import Config, Standin, Text
from koemo.errors import KoemoInputError
from koemo.text.quiet import quiet_weight_loading
from koemo.text.tokenizer import KOBERT_SPECIAL_IDS, KoBERTTokenizer, MODEL_FILE, preprocess_text

if TYPE_CHECKING:
    import pandas as pd

STANDIN_DIRNAME = "kobert-standin"
STANDIN_MARKER = "standin.json"      # written last: its presence means the build completed
STANDIN_KEYWORD = "standin"
TextPart = Literal["tokenizer", "encoder"]     # the two text.* references resolve_text_source reads


def clean_training_texts(texts: Iterable[str]) -> list[str]:
    """The tokenizer's preprocessing, minus empty lines (they carry nothing to learn)."""
    cleaned = (preprocess_text(t) for t in texts if isinstance(t, str))
    return [t for t in cleaned if t]


def texts_sha1(texts: list[str]) -> str:
    digest = hashlib.sha1()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def required_pieces(texts: list[str]) -> tuple[int, int]:
    """(pieces, distinct characters): the smallest vocabulary sentencepiece trains on `texts`
    at character coverage 1.0 is one piece per character its normalizer leaves (NFKC, with the
    word-start mark that stands for spaces) plus KoBERT's special pieces."""
    import sentencepiece as spm

    normalizer = spm.SentencePieceNormalizer(rule_name="nmt_nfkc")
    characters: set[str] = set()
    for text in texts:
        characters.update(normalizer.normalize(text))
    return len(characters) + len(KOBERT_SPECIAL_IDS), len(characters - {"\u2581"})


def trained_vocab_size(texts: list[str], vocab_size: int) -> int:
    """The size sentencepiece is asked for: `vocab_size` when it holds every character of the
    texts (a build as before), else exactly the pieces they need, said in one line. No more than
    that: each further piece is a whole word with an embedding of its own, and on the demo's
    synthetic KEMDy20 texts a ridge readout of the stand-in's states found valence at r 0.73
    with the characters alone against 0.56 with 800 pieces more (held-out sessions)."""
    needed, characters = required_pieces(texts)
    if needed <= vocab_size:
        return int(vocab_size)
    print(f"[koemo] text stand-in: text.standin.vocab_size={vocab_size} cannot hold the "
          f"{characters} distinct characters of {len(texts)} texts; trained with {needed} pieces "
          f"(every character, the word-start mark and {len(KOBERT_SPECIAL_IDS)} special pieces)",
          flush=True)
    return needed


def train_kobert_spm(texts: list[str], vocab_size: int, seed: int = 0) -> bytes:
    """A unigram sentencepiece model whose first five ids are KoBERT's special tokens.
    unk/pad/bos/eos ids pin [UNK]/[PAD]/[CLS]/[SEP] to 0-3 and [MASK] is the first control
    symbol, so it gets id 4. The vocabulary limit is soft: a small corpus yields fewer pieces."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            unk_id=0, unk_piece="[UNK]", pad_id=1, pad_piece="[PAD]",
            bos_id=2, bos_piece="[CLS]", eos_id=3, eos_piece="[SEP]", control_symbols=["[MASK]"],
            num_threads=1, minloglevel=2)
    except RuntimeError as err:
        raise KoemoInputError(
            f"sentencepiece could not train a {vocab_size}-piece stand-in vocabulary on "
            f"{len(texts)} texts: {err}") from err
    return model.getvalue()


def random_bert(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                intermediate_size: int, seed: int) -> Any:
    """A randomly initialised BertModel with KoBERT's layout (pad id 1, 512 positions, 2 types),
    drawn from its own seeded generator so the global torch RNG is left alone."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=num_heads,
                        intermediate_size=intermediate_size, max_position_embeddings=512,
                        type_vocab_size=2, pad_token_id=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
        keep_token_identity(model)
    return model.eval()


def keep_token_identity(model: Any, residual_scale: float = 0.1) -> None:
    """Make a random BertModel's states tell tokens apart, as a pretrained encoder's do.

    Freshly initialised, BERT's word and position embeddings have the same small scale and its
    random attention averages every position towards the sentence mean: the states of a
    1-layer stand-in were 0.8 cosine-similar across sentences and a text regressor trained on
    them could not even fit its training set. Unit-scale word embeddings, near-zero position
    and type embeddings, and damped sub-layer outputs keep each state close to its own token
    (plus a little context), so the demo's text path has the lexical signal KoBERT would give.
    It still carries no linguistic knowledge."""
    import torch

    with torch.no_grad():
        embeddings = model.embeddings
        embeddings.word_embeddings.weight.normal_(0.0, 1.0)
        embeddings.position_embeddings.weight.mul_(0.1)
        embeddings.token_type_embeddings.weight.mul_(0.1)
        for layer in model.encoder.layer:
            layer.attention.output.dense.weight.mul_(residual_scale)
            layer.output.dense.weight.mul_(residual_scale)


def build_standin(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 8002,
                  hidden_size: int = 768, num_layers: int = 2, num_heads: int = 12,
                  intermediate_size: int | None = None, seed: int = 0) -> Path:
    """Train the stand-in tokenizer on `texts` and save it with a random encoder in `out_dir`
    (spiece.model, koemo_tokenizer.json, config.json, model.safetensors, standin.json).
    Deterministic given texts and seed. The encoder's vocabulary equals the pieces actually
    learned (at most the size trained: `vocab_size`, or what the texts' characters need when it
    cannot hold them; `standin.json` records both)."""
    texts = clean_training_texts(texts)
    if not texts:
        raise KoemoInputError("build_standin: no non-empty transcript to train a tokenizer on")
    if hidden_size % num_heads:
        raise KoemoInputError(f"build_standin: hidden_size {hidden_size} is not divisible by "
                              f"num_heads {num_heads}")
    intermediate_size = intermediate_size or 4 * hidden_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STANDIN_MARKER).unlink(missing_ok=True)
    trained = trained_vocab_size(texts, vocab_size)
    (out_dir / MODEL_FILE).write_bytes(train_kobert_spm(texts, trained, seed))
    tokenizer = KoBERTTokenizer(out_dir / MODEL_FILE, source=str(out_dir))
    tokenizer.save_pretrained(out_dir)
    with quiet_weight_loading():
        random_bert(tokenizer.vocab_size, hidden_size, num_layers, num_heads, intermediate_size,
                    seed).save_pretrained(out_dir)
    meta = {"kind": "koemo KoBERT stand-in (random weights, token identity kept)", "seed": seed,
            "vocab_size_requested": vocab_size, "vocab_size_trained": trained,
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
            "intermediate_size": intermediate_size, "n_texts": len(texts),
            "texts_sha1": texts_sha1(texts), "tokenizer_fingerprint": tokenizer.fingerprint}
    (out_dir / STANDIN_MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out_dir


def read_utterance_texts(workdir: str | Path) -> pd.DataFrame:
    """segment_id and text columns of W/utterances.parquet (written by `koemo prepare`);
    a missing transcript reads as empty text."""
    import pandas as pd

    path = Path(workdir) / "utterances.parquet"
    if not path.is_file():
        raise KoemoInputError(f"{path}: not found; run `koemo prepare` first")
    table = pd.read_parquet(path)
    missing = [c for c in ("segment_id", "text") if c not in table.columns]
    if missing:
        raise KoemoInputError(f"{path}: no {' / '.join(missing)} column")
    return table[["segment_id", "text"]].assign(text=table["text"].fillna("").astype(str))


def read_transcripts(workdir: str | Path) -> list[str]:
    return read_utterance_texts(workdir)["text"].tolist()


def standin_settings(text: Text) -> dict[str, Any]:
    """text.standin (sizes; all optional) with the defaults of the schema (koemo.config.schema.
    Standin, which are build_standin's) filled in: build_standin's keyword arguments."""
    return (text.standin or Standin()).model_dump()


def standin_is_current(out_dir: Path, settings: dict[str, Any], texts: list[str]) -> bool:
    marker = out_dir / STANDIN_MARKER
    if not marker.is_file():
        return False
    meta = json.loads(marker.read_text(encoding="utf-8"))
    wanted = dict(settings, intermediate_size=settings["intermediate_size"] or 4 * settings["hidden_size"])
    same_sizes = all(meta.get(k if k != "vocab_size" else "vocab_size_requested") == v
                     for k, v in wanted.items())
    return same_sizes and meta.get("texts_sha1") == texts_sha1(clean_training_texts(texts))


def ensure_standin(workdir: str | Path, cfg: Config, force: bool = False) -> tuple[Path, bool]:
    """Build W/kobert-standin from the workdir's transcripts unless an identical build (same
    sizes, seed and texts) is already there. Returns (directory, built_now)."""
    texts = read_transcripts(workdir)
    settings = standin_settings(cfg.text)
    out_dir = Path(workdir) / STANDIN_DIRNAME
    if not force and standin_is_current(out_dir, settings, texts):
        return out_dir, False
    return build_standin(texts, out_dir, **settings), True


def resolve_text_source(cfg: Config, workdir: str | Path,
                        part: TextPart | None = None) -> str:
    """Where the tokenizer (part="tokenizer") or encoder (part="encoder") comes from:
    `W/kobert-standin` for "standin", else the configured hub id or directory. Without `part`,
    both must name the same source."""
    def one(which: str) -> str:
        value = str(getattr(cfg.text, which))
        return str(Path(workdir) / STANDIN_DIRNAME) if value == STANDIN_KEYWORD else value

    if part is not None:
        if part not in ("tokenizer", "encoder"):
            raise ValueError(f"part must be 'tokenizer' or 'encoder', not {part!r}")
        return one(part)
    tokenizer, encoder = one("tokenizer"), one("encoder")
    if tokenizer != encoder:
        raise KoemoInputError(f"text.tokenizer ({tokenizer}) and text.encoder ({encoder}) differ: "
                              f"call resolve_text_source(cfg, workdir, part='tokenizer'|'encoder')")
    return tokenizer
