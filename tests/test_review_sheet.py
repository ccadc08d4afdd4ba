from batchrun.review.sheet import Sheet, detail_of, flags_of, reason_of

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def _row(row_id, input_row, scene, variant=0, status="ok", sha=None, **more):
    return {"row_id": row_id, "input_row": input_row, "sku": f"SKU-{input_row}", "scene": scene, "variant": variant,
            "status": status, "image_sha256": sha, "image_path": f"images/{row_id}.png" if sha else None,
            "aspect_ratio_requested": "1:1", "image_size_requested": "1K", "prompt": f"prompt {row_id}", **more}


def _sheet(facts=None):
    return Sheet(("sku",), ("scene",), "variant", facts or {})


def test_one_line_per_input_row_and_one_combo_per_matrix_value_in_first_seen_order():
    sheet = _sheet()
    sheet.add_all([_row("r1", 1, "kitchen"), _row("r2", 1, "garden"), _row("r3", 2, "kitchen"), _row("r4", 2, "garden")])
    assert list(sheet.combos) == [("kitchen",), ("garden",)]
    assert [(line["n"], line["in"], [c["k"] for c in line["c"]]) for line in sheet.lines] == [
        (1, ["SKU-1"], [0, 1]), (2, ["SKU-2"], [0, 1])]


def test_variants_share_their_line_and_combo():
    sheet = _sheet()
    sheet.add_all([_row("r1", 1, "kitchen", 0), _row("r2", 1, "kitchen", 1)])
    assert [(c["k"], c["v"]) for c in sheet.lines[0]["c"]] == [(0, 0), (0, 1)]


def test_a_cell_has_a_thumbnail_only_when_its_facts_have_no_error():
    facts = {SHA_A: {"w": 1024, "h": 1024, "dhash": "0" * 16}, SHA_B: {"error": "OSError: truncated"}}
    sheet = _sheet(facts)
    sheet.add_all([_row("r1", 1, "k", sha=SHA_A), _row("r2", 2, "k", sha=SHA_B), _row("r3", 3, "k", status="failed")])
    cells = [line["c"][0] for line in sheet.lines]
    assert [(c["h"], c["t"]) for c in cells] == [(SHA_A, 1), (SHA_B, 0), (None, 0)]
    assert cells[1]["f"] == ["image unreadable"]
    assert sheet.has_images and sheet.statuses == {"ok": 2, "failed": 1}


def test_reasons_say_finish_reason_error_kind_and_message_without_repeats():
    assert reason_of({"status": "blocked", "finish_reason": "SAFETY", "error_kind": "SAFETY"}) == "SAFETY"
    assert reason_of({"status": "failed", "error_kind": "server_error", "error_message": "503 UNAVAILABLE"}) == \
        "server_error: 503 UNAVAILABLE"
    assert reason_of({"status": "blocked", "error_kind": "prompt_blocked", "error_message": "prompt blocked: SAFETY"}) == \
        "prompt blocked: SAFETY"  # the kind is said again by the message: once
    assert reason_of({"status": "invalid"}) == "invalid"
    assert reason_of({"status": "ok", "error_kind": "x"}) is None


def test_flags_use_the_decoded_size_before_the_recorded_one():
    row = _row("r1", 1, "k", sha=SHA_A, image_width=1024, image_height=1024)
    assert flags_of(row, None) == []
    assert flags_of(row, {"w": 1024, "h": 512, "dhash": "0" * 16}) == [
        "aspect 1024x512 is 2.00:1, asked 1:1", "size 1024x512, asked 1K"]


def test_near_duplicate_variants_of_one_combo_are_flagged_and_other_combos_are_not():
    facts = {SHA_A: {"w": 1024, "h": 1024, "dhash": "00000000000000ff"},
             SHA_B: {"w": 1024, "h": 1024, "dhash": "00000000000000fe"},  # 1 bit from A
             SHA_C: {"w": 1024, "h": 1024, "dhash": "ffffffffffffff00"}}
    sheet = _sheet(facts)
    sheet.add_all([_row("r1", 1, "k", 0, sha=SHA_A), _row("r2", 1, "k", 1, sha=SHA_B), _row("r3", 1, "k", 2, sha=SHA_C),
                   _row("r4", 1, "g", 0, sha=SHA_A)])
    flags = {c["id"]: c["f"] for c in sheet.lines[0]["c"]}
    assert flags == {"r1": ["near-duplicate of variant 1"], "r2": ["near-duplicate of variant 0"], "r3": [], "r4": []}


def test_a_text_job_has_no_images_and_keeps_the_start_of_each_reply():
    sheet = Sheet(("topic",), (), None, {})
    sheet.add_all([{"row_id": "r1", "input_row": 1, "topic": "tea", "status": "ok", "text": "x" * 1000}])
    cell = sheet.lines[0]["c"][0]
    assert not sheet.has_images and cell["x"] == "x" * 600 and cell["v"] == 0


def test_rows_without_input_rows_get_a_line_each():
    sheet = _sheet()
    sheet.add_all([_row("r1", None, "k"), _row("r2", None, "k")])
    assert len(sheet.lines) == 2


def test_the_detail_holds_prompt_variables_tokens_cost_and_the_image_path_from_the_report_folder():
    row = _row("r1", 1, "kitchen", sha=SHA_A, model="m", finish_reason="STOP", input_tokens=1200, output_tokens=1120,
               thinking_tokens=None, cost_usd=0.0672, service_tier="standard", latency_ms=2345, attempts=1,
               image_width=1024, image_height=1024, text=None)
    assert detail_of(row, ("sku", "scene"), {}) == {
        "prompt": "prompt r1", "vars": {"sku": "SKU-1", "scene": "kitchen"}, "model": "m", "finish": "STOP",
        "tokens": "in 1,200, out 1,120", "cost": "$0.067200", "tier": "standard", "latency": "2,345 ms", "attempts": 1,
        "size": "1024x1024", "img": "../images/r1.png", "text": None, "shared_from": None}
