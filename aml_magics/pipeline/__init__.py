"""The pipeline engine: a parent run whose process runs the steps of a ``core.pipelines.PipelineSpec`` as child runs."""
