"""The grouped result table printed after every run."""

from recbole_llmaug.report import format_grouped_table, split_result


def table_rows(table):
    """``{group: [n, value, ...]}`` from the printed table (header and title left out)."""
    lines = table.splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["group", "n"])
    return {line.split()[0]: line.split()[1:] for line in lines[header + 1:]}


RESULT = {
    "hit@10": 0.5, "ndcg@10": 0.25,
    "tail_user/hit@10": 0.4, "tail_user/ndcg@10": 0.2,
    "head_user/hit@10": 0.9, "head_user/ndcg@10": 0.45,
}


def test_split_result_puts_ungrouped_keys_under_all():
    assert split_result(RESULT) == {
        "all": {"hit@10": 0.5, "ndcg@10": 0.25},
        "tail_user": {"hit@10": 0.4, "ndcg@10": 0.2},
        "head_user": {"hit@10": 0.9, "ndcg@10": 0.45},
    }


def test_all_row_shows_the_number_of_users():
    """Without an explicit size, 'all' counts the users of the two user groups, which partition them."""
    table = format_grouped_table(RESULT, {"tail_user": 8, "head_user": 2}, title="Test results")
    assert table.splitlines()[0] == "Test results"
    assert table.splitlines()[1].split() == ["group", "n", "hit@10", "ndcg@10"]
    assert table_rows(table) == {
        "all": ["10", "0.5000", "0.2500"],
        "tail_user": ["8", "0.4000", "0.2000"],
        "head_user": ["2", "0.9000", "0.4500"],
    }


def test_an_explicit_all_size_wins_and_unknown_sizes_print_a_dash():
    assert table_rows(format_grouped_table(RESULT, {"all": 12, "tail_user": 8}))["all"][0] == "12"
    assert [row[0] for row in table_rows(format_grouped_table(RESULT)).values()] == ["-", "-", "-"]
