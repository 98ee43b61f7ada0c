"""Smoke: the app signs a demo user in and shows the home page."""


def test_demo_physician_sees_home(as_physician):
    """Test that a demo physician signs in and lands on their home page with work waiting."""
    assert not as_physician.exception
    assert as_physician.title[0].value == "Welcome, Dr. Chidi Okafor"
    assert as_physician.metric[0].value == "24"
