"""Labs: the course's assignments done in pynova (``pynova lab``).

One concept per module:

    lab.py       what a lab is: files, checks, hooks (Lab, Check, CheckContext)
    registry.py  the labs pynova ships (LAB_MODULES), and lab files outside it
    regions.py   skeleton and solution from the marked source regions
    workspace.py a student's directory: start one, open one
    student.py   importing the student's files; their tracebacks
    isolate.py   a function in a forked child with time and memory limits
    checks.py    the staged checks, each isolated; the result model
    hidden.py    teachers' hidden checks as TOML data
    report.py    text, JSON, Gradescope results.json, JUnit XML
    archive.py   unpacking submitted archives safely
    grade.py     many submissions, each in a process of its own, in parallel
    cli.py       ``pynova lab list | start | check | grade``
"""
