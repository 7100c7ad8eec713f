"""The course autograder: release, collect, grade, validate, feedback and export.

Built on nbgrader (metadata, gradebook) and papermill (execution). See the README and the
book's instructors' section for the commands.
"""

__version__ = "0.1.0"
