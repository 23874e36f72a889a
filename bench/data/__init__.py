"""The data pipeline: LAReQA parsing, training pairs, synthetic languages, vocabularies, collation."""
