import re

from batchrun.review.charts import HEIGHT, PAD_BOTTOM, PAD_LEFT, WIDTH, line_chart


def test_a_series_is_drawn_from_the_left_bottom_to_the_right_top():
    svg = line_chart([(0.0, 0.0), (60.0, 5.0), (120.0, 10.0)], title="Spend")
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert points[0] == f"{PAD_LEFT}.0,{HEIGHT - PAD_BOTTOM}.0" or points[0] == f"{PAD_LEFT},{HEIGHT - PAD_BOTTOM}"
    x, y = (float(v) for v in points[-1].split(","))
    assert x == WIDTH - 10 and y == 18
    assert ">10<" in svg and "01-01 00:00:00" in svg and "01-01 00:02:00" in svg


def test_fewer_than_two_points_say_so_instead_of_a_line():
    svg = line_chart([(0.0, 1.0)], title="Results per minute")
    assert "polyline" not in svg and "not enough points" in svg


def test_the_title_is_escaped():
    assert "a&lt;b" in line_chart([], title="a<b")
