"""The core modules of the course (01-13), one file per module, exported from modules/."""
