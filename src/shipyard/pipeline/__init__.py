"""The project file, the step graph, caching by input hash, and the runner."""
