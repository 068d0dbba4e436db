"""The instructor's authoring tools: everything that is not grading a class.

- :mod:`.release`   regenerates ``release/`` from ``source/`` with nbgrader;
- :mod:`.validate`  executes every source notebook with nbgrader's validator;
- :mod:`.expected`  computes the visible checks' expected outputs from the
  reference solutions;
- :mod:`.demo`      builds and grades a demo class end to end;
- :mod:`.bench`     times stock ``nbgrader autograde`` against ``grade``;
- :mod:`.pack`      builds the student pack (and audits it for solutions).
"""
