"""The patient's record pages: documents by class, results, treatments, measurements over time."""
