"""The streaming service behind ``practable-analytics serve``.

One process serves one or many relay streams. Per stream a reader thread only reads frames and puts
them in the shared inbox, and a sender thread sends answers paced; one worker thread owns the Store
and the Handler and does all the work. See docs/serve.md.
"""
