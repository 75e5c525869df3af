"""Figures: data charts, the run's timeline, and the child process that draws them.

    charts.py           which chart a data table gets (`ChartRenderer`, `ChartImage`)
    chart_drawing.py    a chart spec to a PNG with matplotlib
    timeline.py         timeline.png, painted with Pillow
    drawing_process.py  the child process that draws while the run works
    drawlock.py         one lock for matplotlib per process
"""
