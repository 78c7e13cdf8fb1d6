#!/usr/bin/env python3
"""Parity corpus for loom's tokenizers: texts every tokenizer family is checked on.

    python3 tests/reference/gen_tokenizer_corpus.py

Writes tests/reference/golden/tokenize/corpus.jsonl: one {"id", "text"} per line (UTF-8, JSON
with non-ASCII kept literal). Ids are "fixed-NNNN" for the hand-written edge cases, then
"gen-NNNNN" for generated ones. Nothing is downloaded: every text comes from the fragment pools
below, mixed by a random.Random with a fixed seed, so reruns write the same bytes. Only Unicode
scalar values are used (no lone surrogates). Needs nothing beyond the standard library.

What is covered (mixed, not only in isolation): English prose; Python, C, JSON and shell code
with indentation; Chinese, Japanese (kana and kanji), Korean; Arabic, Hebrew, Devanagari, Thai,
Cyrillic, Greek; emoji with ZWJ sequences, skin tones, flags, keycaps; combining marks
(e + U+0301, Vietnamese, stacked marks); whitespace runs, tabs, CRLF, lone CR, trailing spaces,
many newlines, Unicode spaces; long digit runs and numbers with separators; contractions in every
letter case; special-token strings inside text; accented Latin, upper-case text, mixed scripts in
one word; characters normalizers change (ligatures, full-width forms, Turkish dotted I, final
sigma); supplementary-plane characters; control characters; random code points. About 1.2 MB of
text: a few ~20 KB texts, hundreds of medium ones, thousands of short ones (1-200 characters),
the empty string and a single space.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "tokenize", "corpus.jsonl")
SEED = 20250311
TARGET_BYTES = 1_200_000  # UTF-8 bytes of text in total

# ---------------------------------------------------------------------------------------------
# Fragment pools
# ---------------------------------------------------------------------------------------------

ENGLISH_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael.",
    "Language models read text as a sequence of tokens, not characters.",
    "A tokenizer splits the input into pieces and maps each piece to an integer id.",
    "Byte-pair encoding starts from single bytes and repeatedly merges the most frequent pair.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out at 02:56 UTC.",
    "Please don't hesitate to contact us at support@example.com or call +1 (555) 010-4477.",
    "The meeting was moved from Tuesday to Thursday -- again.",
    "\"Are you sure?\" she asked. \"Absolutely,\" he replied, 'without a doubt.'",
    "Prices rose 3.5% year-over-year, to $1,234.56 per unit (see Table 2).",
    "Visit https://example.org/path?query=1&lang=en#section-2 for details.",
    "Mr. Smith, Dr. Jones, and Prof. O'Neil arrived at 9 a.m. sharp.",
    "Well... I suppose that's one way to look at it!",
    "The committee's decision -- announced late on Friday -- surprised everyone.",
    "Rock 'n' roll isn't dead; it's just resting.",
    "Hyphenated words like state-of-the-art and well-known are common.",
    "Semicolons; colons: dashes - and ellipses... all punctuation matters.",
    "Tokenization of whitespace is surprisingly subtle.",
]

WORDS = (
    "time person year way day thing man world life hand part child eye woman place work week "
    "case point government company number group problem fact be have do say get make go know "
    "take see come think look want give use find tell ask seem feel try leave call good new first "
    "last long great little own other old right big high different small large next early young "
    "important few public bad same able to of in for on with at by from up about into over after "
    "model token vocabulary merge encoder decoder byte piece normalizer offset sentence paragraph "
    "embedding vector matrix kernel cache buffer thread memory latency throughput benchmark "
    "river mountain forest ocean city village market garden window kitchen library station "
    "quickly slowly carefully rarely often always never perhaps however therefore meanwhile "
    "unbelievable internationalization antidisestablishmentarianism pneumonia rhythm queue"
).split()

CONTRACTIONS = [
    "don't", "DON'T", "Don't", "dOn'T", "I'm", "I'M", "i'm", "you're", "you'Re", "YOU'RE",
    "You'RE", "we've", "WE'VE", "We'Ve", "they'll", "THEY'LL", "They'Ll", "he'd", "HE'D", "He'D",
    "it's", "IT'S", "It'S", "can't", "CAN'T", "won't", "WON'T", "shouldn't've", "SHOULDN'T'VE",
    "y'all", "Y'ALL", "o'clock", "rock'n'roll", "'tis", "'TIS", "ma'am", "cat's", "CAT'S",
    "James's", "the '90s", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE",
    "'M", "'LL", "'D", "don\u2019t", "I\u2019M", "we\u2019ve", "it''s", "don 't", "''", "'",
]

SPECIAL_STRINGS = [
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]", "[PAD]",
    "[UNK]", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<|reserved_special_token_5|>", "<think>", "</think>", "<tool_call>",
    "<|fim_prefix|>", "<|vision_start|>", "<|endoftext|", "<|endoftext||>", "< s>", "<s >",
    "[cls]", "<|IM_START|>", "<start_of_image>", "<mask>", "<2mass>", "[multimodal]",
]

CHAT_TEMPLATES = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{u}<|im_end|>\n"
    "<|im_start|>assistant\n{a}<|im_end|>\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{u}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{a}<|eot_id|>",
    "<start_of_turn>user\n{u}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n",
    "<s>[INST] {u} [/INST] {a}</s>",
    "[CLS] {u} [SEP] {a} [SEP]",
    "{u}<|endoftext|>{a}<|endoftext|>",
    "<think>\n{u}\n</think>\n\n{a}",
]

CHINESE = [
    "我们今天去公园散步。", "机器学习模型需要大量的数据。", "这个问题很难回答，但是我们可以试试。",
    "北京是中华人民共和国的首都。", "你好，世界！", "分词器把文本切分成词元。",
    "他说：“明天见。”", "数据、算法和算力是人工智能的三大要素；缺一不可。",
    "春眠不觉晓，处处闻啼鸟。", "请在2024年12月31日之前提交报告（第3版）。", "繁體中文與简体中文並存。",
]
JAPANESE = [
    "こんにちは、世界！", "今日はとても良い天気ですね。", "トークナイザーはテキストをトークンに分割します。",
    "私は東京に住んでいます。", "ｶﾀｶﾅの半角文字もあります。", "「ありがとうございました」と彼は言った。",
    "ラーメンを食べに行きましょう！", "日本語の文章には句読点「、」と「。」が使われる。",
    "ゝゞヽヾー〜", "ㇰㇱㇲ小書きカタカナ", "令和６年１２月２５日",
]
KOREAN = [
    "안녕하세요, 세계!", "오늘은 날씨가 정말 좋네요.", "토크나이저는 텍스트를 토큰으로 나눕니다.",
    "서울은 대한민국의 수도입니다.", "한국어 문장에는 띄어쓰기가 있습니다.",
    "\u1100\u1161\u11a8 조합형 자모", "ㄱㄴㄷㄹ ㅏㅑㅓㅕ", "감사합니다!!!",
]
ARABIC = [
    "مرحبا بالعالم!", "اللغة العربية جميلة جدا.", "هذا نص تجريبي لاختبار المقسم.",
    "بِسْمِ ٱللَّٰهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ", "الرقم ١٢٣٤٥٦٧٨٩٠ مكتوب بالأرقام العربية.",
    "كتب Ahmed رسالة في ٢٠٢٤.", "ـــــ تطويل ـــــ", "سلام، كيف حالك؟",
]
HEBREW = [
    "שלום עולם!", "זהו טקסט לבדיקה.", "בְּרֵאשִׁית בָּרָא אֱלֹהִים", "ירושלים היא עיר עתיקה.",
    "המחיר הוא 100 ₪ בלבד.", "אני אוהב C++ ו-Python.",
]
DEVANAGARI = [
    "नमस्ते दुनिया!", "यह एक परीक्षण वाक्य है।", "हिन्दी भाषा देवनागरी लिपि में लिखी जाती है।",
    "क्षत्रिय ज्ञान श्री", "संख्या ०१२३४५६७८९ देवनागरी अंकों में।", "मराठी: महाराष्ट्र राज्य",
    "संस्कृतम् — अहं गच्छामि॥",
]
THAI = [
    "สวัสดีชาวโลก", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ", "วันนี้อากาศดีมาก", "กรุงเทพมหานคร",
    "ตัวเลขไทย ๑๒๓๔๕", "น้ำ ผู้ใหญ่ ไม้เอก",
]
OTHER_SCRIPTS = [
    "Привет, мир! Это тестовый текст.", "ЁЛКИ-ПАЛКИ, всё ещё ёж.", "Γειά σου Κόσμε! ΟΔΥΣΣΕΥΣ",
    "Ελληνικά: σοφός, ΣΟΦΟΣ, ς", "Ողջույն աշխարհ", "გამარჯობა მსოფლიო", "ሰላም ልዑል",
    "வணக்கம் உலகம்", "ಕನ್ನಡ ಭಾಷೆ", "ສະບາຍດີ", "မင်္ဂလာပါ", "ᠮᠣᠩᠭᠣᠯ", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "Ẓ̌ Ħ ŋ Ǆ ǅ ǆ", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲 Gothic", "𓀀𓀁 hieroglyphs",
]
ACCENTED = [
    "café", "naïve", "résumé", "Crème brûlée", "Ångström", "Zürich", "façade", "São Paulo",
    "Łódź", "Dvořák", "Þórr", "Ærøskøbing", "Straße", "STRASSE", "ÉCOLE ÉLÉMENTAIRE",
    "Ça va? Très bien!", "Ñandú", "İstanbul", "ılık", "DİYARBAKIR", "Œuvre", "ĳssel", "ﬁnal ﬂow",
    "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "①②③ ⅷ Ⅻ", "x² + y³ = z⁴", "½ ¼ ¾", "℃ ℉ № ™ ℡",
    "\u212b \u2126 \u00c5", "ﾊﾝｶｸ", "\u01c4\u01c5\u01c6",
]
COMBINING = [
    "e\u0301", "cafe\u0301", "re\u0301sume\u0301", "A\u030a", "n\u0303", "o\u0308\u0304",
    "Tiếng Việt có dấu: Người Việt Nam, phở, bánh mì, Hà Nội, Đà Nẵng.",
    "Tie\u0302\u0301ng Vie\u0323\u0302t (decomposed)", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034d A\u0334\u0335\u031c\u0330\u0354\u036bL\u0328\u0341G\u0315O\u0358",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309", "\u0301 leading mark",
    "\u05e9\u05c1\u05b8", "क\u094d\u200dष", "\u0e01\u0e34\u0e4a", "i\u0307", "ǹ ḿ ẃ", "ﬀ\u0301",
]
EMOJI = [
    "😀", "😂🤣", "❤️", "👍", "👍🏻", "👍🏿", "👋🏽", "🧑🏾‍💻", "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨",
    "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵", "🇩🇪🇫🇷🇮🇹", "🇺", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "*️⃣", "☺", "☺️",
    "🫠", "🦀", "🐍", "🤷‍♀️", "🙅🏼‍♂️", "👁️‍🗨️", "🧔🏻‍♀️", "✈️", "⚡", "🔥🔥🔥", "🙏",
    "\U0001F468\u200d\U0001F468\u200d\U0001F467", "\u200d", "\ufe0f",
]
SPACES = [
    " ", "  ", "   ", "    ", "        ", " " * 17, " " * 64, "\t", "\t\t", "\t\t\t\t", " \t ",
    "\n", "\n\n", "\n\n\n", "\n" * 7, "\n" * 25, "\r\n", "\r\n\r\n", "\r", "\r\r", "\n\r",
    " \n", "  \n", "\t\n", " \r\n", "\u00a0", "\u2009", "\u3000", "\u200b", "\u2028", "\u2029",
    "\u0085", "\x0b", "\x0c", "\u202f", "\u1680", "\ufeff", " \u00a0 ", "\n \n \n",
]
CONTROL = ["\x00", "\x01", "\x07", "\x1b[31m", "\x1f", "\x7f", "\u0080", "\u009f", "\ufffd",
           "\ufffe", "\uffff", "\U0010fffd", "\ue000", "\U000e0001"]


def rand_word(r):
    return r.choice(WORDS)


def english_sentence(r):
    if r.random() < 0.35:
        return r.choice(ENGLISH_SENTENCES)
    n = r.randint(3, 18)
    words = [rand_word(r) for _ in range(n)]
    if r.random() < 0.3:
        words[r.randrange(n)] = r.choice(CONTRACTIONS)
    if r.random() < 0.2:
        words[r.randrange(n)] = number(r)
    if r.random() < 0.15:
        i = r.randrange(n)
        words[i] = words[i].upper()
    if r.random() < 0.1:
        words[r.randrange(n)] = r.choice(ACCENTED)
    s = " ".join(words)
    s = s[0].upper() + s[1:]
    if r.random() < 0.3:
        k = r.randrange(1, n)
        s = " ".join(words[:k]) + r.choice([",", ";", " --", ":", " -"]) + " " + " ".join(words[k:])
        s = s[0].upper() + s[1:]
    return s + r.choice([".", ".", ".", "!", "?", "...", "?!", ""])


def english_paragraph(r, n=None):
    n = n or r.randint(2, 8)
    return " ".join(english_sentence(r) for _ in range(n))


def number(r):
    k = r.randrange(12)
    if k == 0:
        return str(r.randrange(10))
    if k == 1:
        return str(r.randrange(10 ** r.randint(2, 6)))
    if k == 2:
        return "".join(r.choice("0123456789") for _ in range(r.randint(10, 40)))
    if k == 3:
        return f"{r.randrange(10 ** 9):,}"
    if k == 4:
        return f"{r.randrange(10 ** 7):,}".replace(",", ".") + "," + f"{r.randrange(100):02d}"
    if k == 5:
        return f"{r.uniform(-1e4, 1e4):.{r.randint(1, 8)}f}"
    if k == 6:
        return f"{r.uniform(0, 1):.3e}"
    if k == 7:
        return "0x" + "".join(r.choice("0123456789abcdefABCDEF") for _ in range(r.randint(2, 16)))
    if k == 8:
        return f"{r.randrange(10 ** 6):_}" if r.random() < 0.5 else f"{r.randrange(10 ** 9):,}".replace(",", "\u202f")
    if k == 9:
        return f"{r.randint(1900, 2099)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:{r.randrange(60):02d}Z"
    if k == 10:
        return r.choice(["1234567890123", "3.14159265358979323846", "-0.0", "+42", "1e-9",
                         "6.022e23", "١٢٣٤٥", "१२३४", "１２３４５", "½", "10%", "$5", "€1.234,50",
                         "¥10000", "192.168.0.1", "v1.2.3-rc.4", "(555) 123-4567", "007", "00000"])
    return f"{r.randrange(1000)}.{r.randrange(1000)}.{r.randrange(1000)}"


def ident(r):
    base = r.choice(["x", "i", "n", "buf", "count", "token_ids", "vocab", "merges", "offset",
                     "resultValue", "MAX_LEN", "_private", "__init__", "self", "ctx", "tmp2",
                     "byteLevel", "kMaxTokens", "utf8_len", "données", "变量", "π"])
    if r.random() < 0.3:
        base += "_" + rand_word(r)
    return base


def code_python(r):
    ind = r.choice(["    ", "  ", "\t"])
    f, a, b = ident(r), ident(r), ident(r)
    lines = [
        f"def {f}({a}, {b}=None):",
        f'{ind}"""{english_sentence(r)}"""',
        f"{ind}if {b} is None:",
        f"{ind}{ind}{b} = {{}}",
        f"{ind}for i, ch in enumerate({a}):",
        f"{ind}{ind}if ch in ('\\n', '\\t', ' '):  # {rand_word(r)} {rand_word(r)}",
        f"{ind}{ind}{ind}continue",
        f"{ind}{ind}{b}[ch] = {b}.get(ch, 0) + {number(r)}",
        f"{ind}return sorted({b}.items(), key=lambda kv: (-kv[1], kv[0]))",
        "",
        "",
        f"class {f.title().replace('_', '')}(object):",
        f"{ind}def __init__(self, {a}: int = {r.randrange(100)}) -> None:",
        f"{ind}{ind}self.{a} = {a}",
        f"{ind}{ind}self._cache: dict[str, list[int]] = {{}}",
        "",
        f"if __name__ == \"__main__\":",
        f"{ind}print(f\"{{{f}('{r.choice(ENGLISH_SENTENCES)[:30]}')!r}}\")",
    ]
    k = r.randint(4, len(lines))
    return "\n".join(lines[:k]) + r.choice(["\n", "", "\n\n"])


def code_c(r):
    f, a = ident(r).replace("é", "e"), ident(r)
    lines = [
        "#include <stdio.h>",
        "#include <stdint.h>",
        "",
        f"/* {english_sentence(r)} */",
        f"static int {f}(const uint8_t *{a}, size_t len) {{",
        f"    int total = 0;",
        f"    for (size_t i = 0; i < len; ++i) {{",
        f"        if ({a}[i] >= 0x80 && ({a}[i] & 0xC0) != 0x80) {{",
        f"            total += {number(r)};  // {rand_word(r)}",
        f"        }} else {{",
        f"\t\ttotal--;",
        f"        }}",
        f"    }}",
        f"    return total;",
        f"}}",
        "",
        "int main(int argc, char **argv) {",
        f'    printf("%d\\n", {f}((const uint8_t *)argv[0], {r.randrange(64)}));',
        "    return 0;",
        "}",
    ]
    k = r.randint(5, len(lines))
    s = "\n".join(lines[r.randrange(3):k]) + "\n"
    if r.random() < 0.25:
        s = s.replace("\n", "\r\n")
    return s


def json_value(r, depth=0):
    k = r.randrange(7 if depth < 3 else 4)
    if k == 0:
        return r.randrange(-1000, 100000)
    if k == 1:
        return round(r.uniform(-100, 100), r.randint(0, 6))
    if k == 2:
        return r.choice([True, False, None])
    if k == 3:
        return r.choice([english_sentence(r), rand_word(r), r.choice(CHINESE), r.choice(EMOJI),
                         r.choice(CONTRACTIONS), "", " ", "line1\nline2\ttab", number(r)])
    if k in (4, 5):
        return {ident(r): json_value(r, depth + 1) for _ in range(r.randint(1, 5))}
    return [json_value(r, depth + 1) for _ in range(r.randint(0, 5))]


def code_json(r):
    v = {ident(r): json_value(r) for _ in range(r.randint(1, 6))}
    mode = r.randrange(4)
    if mode == 0:
        return json.dumps(v, ensure_ascii=False)
    if mode == 1:
        return json.dumps(v, ensure_ascii=True, indent=2)
    if mode == 2:
        return json.dumps(v, ensure_ascii=False, indent=4) + "\n"
    return json.dumps(v, ensure_ascii=False, indent="\t", separators=(",", ": "))


def code_shell(r):
    lines = [
        "#!/usr/bin/env bash",
        "set -euo pipefail",
        f'dir="${{1:-/tmp/{rand_word(r)}}}"',
        f"for f in \"$dir\"/*.txt; do",
        f"  wc -l \"$f\" | awk '{{print $1}}' >> counts.log  # {rand_word(r)}",
        "done",
        f"if [ \"$#\" -gt {r.randrange(5)} ]; then echo \"too many args: $*\" >&2; exit 2; fi",
        f"export LANG=C.UTF-8 N={number(r)}",
        "grep -rn 'TODO\\|FIXME' src/ 2>/dev/null || true",
        f"curl -fsSL \"https://example.com/{rand_word(r)}?q=$N\" -o out.json && jq '.items[] | .id' out.json",
        "cat <<'EOF' > note.txt",
        f"   indented {english_sentence(r)}   ",
        "EOF",
        "echo $((1 + 2 * 3)) ${#dir} ~/.config && cd - >/dev/null",
    ]
    start = r.randrange(3)
    k = r.randint(start + 3, len(lines))
    return "\n".join(lines[start:k]) + "\n"


def code(r):
    return r.choice([code_python, code_c, code_json, code_shell])(r)


def cjk(r):
    pools = [CHINESE, JAPANESE, KOREAN]
    s = "".join(r.choice(r.choice(pools)) for _ in range(r.randint(1, 4)))
    if r.random() < 0.3:  # random ideographs / syllables / kana
        rng = r.choice([(0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x3041, 0x3096), (0x30A1, 0x30FA),
                        (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF)])
        s += "".join(chr(r.randint(*rng)) for _ in range(r.randint(1, 20)))
    return s


def world(r):
    pool = r.choice([ARABIC, HEBREW, DEVANAGARI, THAI, OTHER_SCRIPTS, ACCENTED, COMBINING])
    return " ".join(r.choice(pool) for _ in range(r.randint(1, 4)))


def emoji(r):
    seps = ["", "", " ", "\u200d", ", "]
    return r.choice(seps).join(r.choice(EMOJI) for _ in range(r.randint(1, 8)))


def whitespace(r):
    return "".join(r.choice(SPACES) for _ in range(r.randint(1, 4)))


def mixed_word(r):
    parts = [rand_word(r), r.choice(CHINESE)[:2], r.choice(ARABIC)[:3], r.choice(EMOJI),
             r.choice(ACCENTED), number(r), r.choice(OTHER_SCRIPTS)[:4], r.choice(JAPANESE)[:3],
             r.choice(KOREAN)[:2], r.choice(THAI)[:3], r.choice(DEVANAGARI)[:3], "_", "-", "'"]
    return "".join(r.choice(parts) for _ in range(r.randint(2, 5)))


def special(r):
    if r.random() < 0.4:
        return r.choice(CHAT_TEMPLATES).format(u=english_sentence(r), a=piece(r, depth=1))
    return r.choice(["", " ", "\n"]).join(r.choice(SPECIAL_STRINGS) for _ in range(r.randint(1, 3)))


def upper(r):
    return english_paragraph(r, r.randint(1, 3)).upper()


def contractions(r):
    return " ".join(r.choice(CONTRACTIONS) for _ in range(r.randint(1, 6)))


def random_codepoints(r):
    out = []
    for _ in range(r.randint(1, 24)):
        rng = r.choice([(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F),
                        (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0xDFF), (0xE00, 0xEFF),
                        (0x1E00, 0x1FFF), (0x2000, 0x2BFF), (0x3000, 0x30FF), (0xFF00, 0xFFEF),
                        (0x1F300, 0x1FAFF), (0x10000, 0x1FFFF), (0x0, 0x1F)])
        c = r.randint(*rng)
        if 0xD800 <= c <= 0xDFFF:
            continue
        out.append(chr(c))
    return "".join(out)


def trailing(r):
    return english_sentence(r) + " " * r.randint(1, 8) + r.choice(["", "\n", "\r\n", "\t"])


KINDS = [
    (english_paragraph, 18), (code, 12), (cjk, 8), (world, 10), (emoji, 5), (whitespace, 4),
    (lambda r: number(r), 4), (contractions, 4), (special, 6), (upper, 3), (mixed_word, 4),
    (random_codepoints, 3), (trailing, 3), (lambda r: r.choice(CONTROL), 1),
]
KIND_FUNCS = [k for k, _ in KINDS]
KIND_WEIGHTS = [w for _, w in KINDS]


def piece(r, depth=0):
    f = r.choices(KIND_FUNCS, KIND_WEIGHTS)[0]
    if depth > 0 and f is special:
        f = english_sentence
    return f(r)


def joiner(r):
    return r.choice([" ", " ", " ", "", "\n", "\n\n", "\r\n", "\t", "  ", "\r", " \n", "\n\n\n\n"])


def compose(r, target_chars):
    parts = []
    n = 0
    while n < target_chars:
        p = piece(r)
        parts.append(p)
        parts.append(joiner(r))
        n += len(p) + 1
    return "".join(parts[:-1])


def short_text(r):
    mode = r.randrange(4)
    if mode == 0:
        s = piece(r)
    elif mode == 1:
        s = compose(r, r.randint(1, 120))
    elif mode == 2:
        s = english_sentence(r)
    else:
        s = mixed_word(r)
    if len(s) > 200:
        s = s[:r.randint(1, 200)]
    return s


# ---------------------------------------------------------------------------------------------
# Hand-written edge cases
# ---------------------------------------------------------------------------------------------

FIXED = [
    "", " ", "  ", "\n", "\t", "\r", "\r\n", "\n\n", " \n", "a", "A", "0", "'", "''", "' ", " '",
    "Hello world", " Hello world", "Hello world ", "Hello  world", "hello\nworld", "hello\r\nworld",
    "hello\rworld", "trailing spaces   ", "   leading spaces", "\n\n\n\nmany newlines\n\n\n\n\n",
    "tab\tseparated\tvalues\t", "\t\tdeeply\n\t\t\tindented", " " * 200, "\n" * 200,
    " \t \r\n \n\r \u00a0 \u3000 ", "1234567890123", "12345678901234567890", "1,234,567.89",
    "1 234 567", "3.14159", "-42", "+1-800-555-0199", "2024-01-01", "0.000001", "1e10",
    "don't DON'T Don't I'm I'M i'm you're you'Re YOU'RE we've WE'VE We'Ve",
    "they'll THEY'LL he'd HE'D it's IT'S can't CAN'T", "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D", "I'M NOT SURE YOU'RE RIGHT, WE'VE SEEN IT.",
    "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "<s>", "</s>", "<s>hello</s>", " <s> hello </s> ", "[CLS]", "[CLS] hello [SEP]",
    "[cls] lower", "<start_of_turn>user\nhi<end_of_turn>", "<|im_start|>user\nhi<|im_end|>",
    "<|begin_of_text|>hi<|eot_id|>", "<unk>", "<pad>", "[MASK]", "<|endoftext|", "<s",
    "e\u0301", "caf\u00e9 cafe\u0301", "Tiếng Việt", "Ångström \u212bngstr\u00f6m",
    "İstanbul ıstanbul ISTANBUL", "ΣΟΦΟΣ σοφός", "Straße STRASSE", "ﬁ ﬂ ﬀ ﬃ", "Ｈｅｌｌｏ",
    "中文", "日本語のテキスト", "한국어", "مرحبا", "שלום", "नमस्ते", "สวัสดี", "Привет",
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇬🇧", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "naïve中文mixed😀word", "Hello世界", "abcабвαβγ", "x\u200by", "\ufeffBOM", "\u0000",
    "\x7f\x80", "\ufffd", "\U0010fffd", "𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀀𠀁", "é" * 300, "ab" * 300,
    "a" * 1000, "9" * 500, "!" * 100, "." * 100, "-" * 80, "=" * 80, "_" * 50, "#" * 30,
    "    def f(x):\n        return x\n", "{\n  \"a\": [1, 2, 3]\n}\n", "$ echo \"hi\" | tr a-z A-Z",
    "int main(void) { return 0; }\r\n", "ALL UPPERCASE TEXT WITH NUMBERS 123 AND PUNCTUATION!",
    "MiXeD cAsE tExT", "word" + "\u0301" * 20, "\u0301\u0301\u0301",
]


def dumps(obj):
    """JSON with non-ASCII literal, except the characters some line splitters break lines at
    (U+0085, U+2028, U+2029), which are escaped so every record is exactly one line."""
    s = json.dumps(obj, ensure_ascii=False)
    return s.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def main():
    r = random.Random(SEED)
    records = [(f"fixed-{i:04d}", t) for i, t in enumerate(FIXED)]
    total = sum(len(t.encode("utf-8")) for _, t in records)
    gen = []
    # A few long texts (~20 KB each).
    for _ in range(6):
        gen.append(compose(r, r.randint(16000, 22000)))
    # Long single-kind texts: a long English essay, long code, a long CJK run.
    gen.append("\n\n".join(english_paragraph(r) for _ in range(60)))
    gen.append("\n".join(code(r) for _ in range(40)))
    gen.append("".join(cjk(r) for _ in range(150)))
    total += sum(len(t.encode("utf-8")) for t in gen)
    while total < TARGET_BYTES:
        x = r.random()
        if x < 0.92:
            t = short_text(r)
        elif x < 0.995:
            t = compose(r, r.randint(200, 3000))
        else:
            t = compose(r, r.randint(3000, 8000))
        gen.append(t)
        total += len(t.encode("utf-8"))
    records += [(f"gen-{i:05d}", t) for i, t in enumerate(gen)]
    for rid, t in records:
        t.encode("utf-8")  # raises on a lone surrogate
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for rid, t in records:
            f.write(dumps({"id": rid, "text": t}) + "\n")
    print(f"{OUT}: {len(records)} records, {total} UTF-8 bytes of text, "
          f"{os.path.getsize(OUT)} bytes on disk")


if __name__ == "__main__":
    main()
