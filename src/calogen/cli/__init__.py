"""calogen.cli"""
