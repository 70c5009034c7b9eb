"""Tests of the hosted providers (Gemini, Vertex) and their shared HTTP machinery."""
