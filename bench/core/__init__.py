"""The plain types every part of bench can use, importing nothing of the benchmark: the pair references and
batch plans that samplers yield and collation, training and sharding consume (`pairs`), and the metric
vocabulary that evaluation fills and results name as columns (`metric_names`)."""
