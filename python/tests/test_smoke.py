def test_imports():
    import isthmus_django
    import isthmus_reflex

    assert isthmus_reflex.INJECTION_KEY == "isthmus"
    assert isthmus_django.IDENTITY_SECRET_HEADER == "X-Isthmus-Secret"
