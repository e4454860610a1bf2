<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\output;

use local_student_dashboard\local\finance_summary;
use local_student_dashboard\local\formatter;
use local_student_dashboard\local\grade_converter;
use local_student_dashboard\local\money;

/**
 * The student dashboard: profile, academics, finance summary, payment history and BTEC grades.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class dashboard implements \renderable, \templatable {

    /** @var \stdClass The student. */
    protected \stdClass $user;

    /** @var array The data (local\dashboard_data::load()). */
    protected array $data;

    /** @var bool[] Which sections to show (local\dashboard_data::visibility()). */
    protected array $visibility;

    /** @var formatter Money and date formatting. */
    protected formatter $formatter;

    /** @var grade_converter Grade to BTEC level. */
    protected grade_converter $converter;

    /** @var bool Whether the viewer is the student. */
    protected bool $isown;

    /**
     * Create the dashboard.
     *
     * @param \stdClass $user The student.
     * @param array $data The data (local\dashboard_data::load()).
     * @param bool[] $visibility Which sections to show.
     * @param formatter $formatter Money and date formatting.
     * @param grade_converter $converter Grade to BTEC level.
     * @param bool $isown Whether the viewer is the student.
     */
    public function __construct(\stdClass $user, array $data, array $visibility, formatter $formatter,
            grade_converter $converter, bool $isown) {
        $this->user = $user;
        $this->data = $data;
        $this->visibility = $visibility;
        $this->formatter = $formatter;
        $this->converter = $converter;
        $this->isown = $isown;
    }

    /**
     * The template context.
     *
     * @param \renderer_base $output The renderer.
     * @return array
     */
    public function export_for_template(\renderer_base $output): array {
        $registrations = $this->data['registrations'];
        $payments = $this->data['payments'];
        $fullname = fullname($this->user);

        $lastsync = (int) ($this->data['lastsync'] ?? 0);
        $context = [
            'fullname' => $fullname,
            'isown' => $this->isown,
            'hasdata' => $registrations || $payments || $this->data['grades'] || $this->data['coursegrades'],
            'lastsync' => $lastsync > 0 ? userdate($lastsync, get_string('strftimedatetime', 'langconfig')) : '',
            'showprofile' => $this->visibility['showprofile'],
            'showacademics' => $this->visibility['showacademics'],
            'showfinance' => $this->visibility['showfinance'],
            'showremaining' => $this->visibility['showremainingbalance'],
            'showpayments' => $this->visibility['showpayments'],
            'showgrades' => $this->visibility['showgrades'],
        ];

        $context['profile'] = [
            'fullname' => $fullname,
            'email' => $this->user->email,
            'idnumber' => $this->user->idnumber,
            'program' => $registrations ? format_string($registrations[0]->program) : '',
        ];

        $context['registrations'] = [];
        foreach ($registrations as $registration) {
            $context['registrations'][] = [
                'program' => format_string($registration->program),
                'registrationdate' => $this->formatter->date($registration->registrationdate),
                'status' => format_string($registration->status),
            ];
        }
        $context['hasregistrations'] = !empty($context['registrations']);

        $summary = new finance_summary(
            array_map(fn(\stdClass $r): array => [
                'zohoid' => $r->zohoid,
                'totalfee' => $r->totalfee,
                'scholarshippercent' => $r->scholarshippercent,
                'currency' => $r->currency,
            ], $registrations),
            array_map(fn(\stdClass $p): array => [
                'registrationzohoid' => $p->registrationzohoid,
                'amount' => $p->amount,
                'status' => $p->status,
            ], $payments)
        );
        $context['finance'] = [];
        foreach ($summary->totals() as $total) {
            $currency = $total['currency'];
            $context['finance'][] = [
                'currency' => $currency,
                'totalfee' => $this->formatter->money($total['totalfee'], $currency),
                'scholarshippercent' => $this->formatter->percent($total['scholarshippercent']),
                'scholarshipamount' => $this->formatter->money(-$total['scholarship'], $currency),
                'net' => $this->formatter->money($total['net'], $currency),
                'paid' => $this->formatter->money($total['paid'], $currency),
                'remaining' => $this->formatter->money($total['remaining'], $currency),
            ];
        }
        $context['hasfinance'] = !empty($context['finance']);

        $context['payments'] = [];
        foreach ($payments as $payment) {
            $currency = $summary->currency_of_payment(['registrationzohoid' => $payment->registrationzohoid]);
            $ispaid = $payment->status === finance_summary::STATUS_PAID;
            $context['payments'][] = [
                'date' => $this->formatter->date($ispaid ? ($payment->paymentdate ?? $payment->duedate) :
                    ($payment->duedate ?? $payment->paymentdate)),
                'amount' => $this->formatter->money(money::parse(money::normalise($payment->amount) ?? '0') ?? 0, $currency),
                'status' => get_string('paymentstatus:' . strtolower($payment->status), 'local_student_dashboard'),
                'badgeclass' => self::payment_badge($payment->status),
            ];
        }
        $context['haspayments'] = !empty($context['payments']);

        // BTEC grades: each level recorded in Zoho (with its date) beside the current grade of its class's course,
        // then the courses with a current grade and nothing recorded yet.
        $current = [];
        foreach ($this->data['coursegrades'] as $coursegrade) {
            $level = $this->converter->convert((float) $coursegrade->finalgrade, (float) $coursegrade->grademin,
                (float) $coursegrade->grademax, $coursegrade->scaleitem);
            if ($level !== null) {
                $current[] = ['record' => $coursegrade, 'level' => $level];
            }
        }
        $currentbyclass = [];
        foreach ($current as $entry) {
            if ($entry['record']->idnumber !== '' && !isset($currentbyclass[$entry['record']->idnumber])) {
                $currentbyclass[$entry['record']->idnumber] = $entry;
            }
        }
        $context['grades'] = [];
        $recordedclasses = [];
        foreach ($this->data['grades'] as $grade) {
            $unit = trim(($grade->unitcode ?? '') . ' ' . ($grade->unitname ?? ''));
            $row = [
                'unit' => $unit === '' ? get_string('unknownunit', 'local_student_dashboard') : format_string($unit),
                'hasrecorded' => true,
                'level' => get_string('level:' . strtolower($grade->grade), 'local_student_dashboard'),
                'badgeclass' => self::level_badge($grade->grade),
                'date' => $this->formatter->date($grade->gradeddate),
            ] + self::current_columns($currentbyclass[$grade->classzohoid] ?? null, true);
            if ($grade->classzohoid !== '') {
                $recordedclasses[$grade->classzohoid] = true;
            }
            $context['grades'][] = $row;
        }
        foreach ($current as $entry) {
            $idnumber = $entry['record']->idnumber;
            if ($idnumber !== '' && isset($recordedclasses[$idnumber])) {
                continue;
            }
            $context['grades'][] = [
                'unit' => format_string($entry['record']->fullname),
                'hasrecorded' => false,
                'level' => '',
                'badgeclass' => '',
                'date' => '',
            ] + self::current_columns($entry, false);
        }
        $context['hasgrades'] = !empty($context['grades']);

        return $context;
    }

    /**
     * The "current course grade" cells of a grades row.
     *
     * @param array|null $entry The course total (record, level), null when there is none.
     * @param bool $withcourse Whether to name the course (on a recorded unit's row).
     * @return array With hascurrent, currentlevel, currentbadgeclass, currentcourse.
     */
    protected static function current_columns(?array $entry, bool $withcourse): array {
        if ($entry === null) {
            return ['hascurrent' => false, 'currentlevel' => '', 'currentbadgeclass' => '', 'currentcourse' => ''];
        }
        return [
            'hascurrent' => true,
            'currentlevel' => get_string('level:' . strtolower($entry['level']), 'local_student_dashboard'),
            'currentbadgeclass' => self::level_badge($entry['level']),
            'currentcourse' => $withcourse ? format_string($entry['record']->fullname) : '',
        ];
    }

    /**
     * The badge classes of a payment status (the status is also written out, colour is never the only cue).
     *
     * @param string $status Paid, Due or Overdue.
     * @return string
     */
    protected static function payment_badge(string $status): string {
        $classes = [
            'Paid' => 'badge-success bg-success',
            'Due' => 'badge-warning bg-warning text-dark',
            'Overdue' => 'badge-danger bg-danger',
        ];
        return $classes[$status] ?? 'badge-secondary bg-secondary';
    }

    /**
     * The badge classes of a BTEC level.
     *
     * @param string $level Refer, Pass, Merit or Distinction.
     * @return string
     */
    protected static function level_badge(string $level): string {
        $classes = [
            grade_converter::DISTINCTION => 'badge-success bg-success',
            grade_converter::MERIT => 'badge-info bg-info text-dark',
            grade_converter::PASS => 'badge-primary bg-primary',
            grade_converter::REFER => 'badge-danger bg-danger',
        ];
        return $classes[$level] ?? 'badge-secondary bg-secondary';
    }
}
