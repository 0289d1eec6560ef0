"""``custody simulate``: a realistic recycling network posting through the ingest API.

``scenario`` builds the network and the upload plan (pure, deterministic for a seed);
``runner`` registers the network and posts the plan over HTTP.
"""
