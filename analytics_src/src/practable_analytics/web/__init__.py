"""The instructor's class view: a read-only web server over the analytics store (``practable-analytics web``).

Built on Flask (application) and waitress (WSGI server), both pure Python with releases for CPython
3.8 to 3.13, installed with the ``web`` extra. It never imports :mod:`practable_analytics.service`.
"""
