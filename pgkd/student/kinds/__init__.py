"""The student kinds, one file each: its settings block, its Student class, registered with
@STUDENT_KINDS.register (pgkd/student/base.py). Every module here is imported when the kinds are listed."""
