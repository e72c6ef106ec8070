"""`operator/` is a source root, never a package: `import operator` must stay the standard library."""

import operator


def test_import_operator_is_the_standard_library() -> None:
    # given the repository's source root on sys.path (tests/conftest.py puts it there)
    # when `operator` is imported
    # then it is the stdlib module, not the repository folder
    assert operator.add(2, 3) == 5
    assert hasattr(operator, "itemgetter")
    assert not hasattr(operator, "__path__"), "a package named `operator` shadows the standard library"


def test_tollgate_imports_from_the_source_root() -> None:
    import tollgate

    assert tollgate.__file__ is not None
    assert "/operator/tollgate/" in tollgate.__file__.replace("\\", "/")
