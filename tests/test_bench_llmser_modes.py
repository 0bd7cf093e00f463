"""``benchmarks/bench_llmser_modes.py``'s reading of free-text answers (no LLM here: fixed strings)."""

from benchmarks.bench_llmser_modes import answer_lines, jaccard, line_names


def test_answer_lines_drop_marks_numbers_and_blank_lines():
    answer = "1. Rose Lip Balm\n\n- Matte Powder 12g\n* 3) Night Cream\n   \n"
    assert answer_lines(answer) == ["rose lip balm", "matte powder 12g", "night cream"]
    assert answer_lines(None) == []


def test_a_line_names_a_title_it_contains_or_is_part_of():
    titles = ["rose lip balm", "night cream for dry skin"]
    assert line_names("rose lip balm", titles) and line_names("night cream for", titles)
    assert line_names("1. rose lip balm, 10 ml", titles)
    assert not line_names("unicorn glitter", titles) and not line_names("cream", titles)


def test_jaccard_of_kept_items():
    assert jaccard(["a", "b"], ["b", "c"]) == 1 / 3 and jaccard([], []) == 1.0
