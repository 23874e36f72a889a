"""Retrieval evaluation: the LAReQA protocol, exact ranking metrics, encoders for texts, BEIR/TREC export."""
