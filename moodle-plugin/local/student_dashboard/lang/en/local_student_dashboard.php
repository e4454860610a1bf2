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

/**
 * English strings of the student dashboard.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

$string['amount'] = 'Amount';
$string['batchtoolarge'] = 'Too many items in one call: {$a->count}; at most {$a->max} are accepted.';
$string['currentgrade'] = 'Current course grade';
$string['eventsendfailed'] = 'Could not send event {$a->eventid} to {$a->url} (HTTP {$a->httpcode}): {$a->error}';
$string['findstudent'] = 'Find a student';
$string['findstudent_placeholder'] = 'Name, email or student ID';
$string['gradeddate'] = 'Graded on';
$string['lastsync'] = 'Last updated from the college records: {$a}';
$string['level'] = 'Level';
$string['level:distinction'] = 'Distinction';
$string['level:merit'] = 'Merit';
$string['level:pass'] = 'Pass';
$string['level:refer'] = 'Refer';
$string['navigationlink'] = 'My student dashboard';
$string['netamount'] = 'Net amount';
$string['nocurrentgrade'] = 'No grade yet';
$string['nodata'] = 'There is nothing on your student dashboard yet. Your registrations, fees, payments and grades appear here once the college office has recorded them.';
$string['nodatastaff'] = 'There is no dashboard data for this student yet.';
$string['nofinance'] = 'No fees recorded.';
$string['nogrades'] = 'No grades yet.';
$string['nopayments'] = 'No payments recorded.';
$string['noregistrations'] = 'No registrations recorded.';
$string['nostudentsfound'] = 'No student with dashboard data matches this search.';
$string['notrecorded'] = 'Not recorded yet';
$string['paymentstatus:due'] = 'Due';
$string['paymentstatus:overdue'] = 'Overdue';
$string['paymentstatus:paid'] = 'Paid';
$string['pluginname'] = 'Student dashboard';
$string['privacy:metadata:grade'] = 'BTEC grades of the student, as recorded in the college\'s Zoho CRM.';
$string['privacy:metadata:grade:grade'] = 'The BTEC level (Pass, Merit, Distinction or Refer).';
$string['privacy:metadata:grade:gradeddate'] = 'The date of the grade.';
$string['privacy:metadata:grade:moodlegrade'] = 'The Moodle grade the level came from.';
$string['privacy:metadata:grade:unitzohoid'] = 'The Zoho id of the BTEC unit.';
$string['privacy:metadata:grade:userid'] = 'The student the grade belongs to.';
$string['privacy:metadata:pay'] = 'Payments of the student, as recorded in the college\'s Zoho CRM.';
$string['privacy:metadata:pay:amount'] = 'The amount of the payment.';
$string['privacy:metadata:pay:duedate'] = 'The date the payment is due.';
$string['privacy:metadata:pay:paymentdate'] = 'The date of the payment.';
$string['privacy:metadata:pay:paymentmethod'] = 'How the payment was made.';
$string['privacy:metadata:pay:status'] = 'Whether the payment is paid, due or overdue.';
$string['privacy:metadata:pay:userid'] = 'The student the payment belongs to.';
$string['privacy:metadata:reg'] = 'Registrations of the student on programs, with their fees, as recorded in the college\'s Zoho CRM.';
$string['privacy:metadata:reg:currency'] = 'The currency of the fee.';
$string['privacy:metadata:reg:program'] = 'The program registered on.';
$string['privacy:metadata:reg:registrationdate'] = 'The date of the registration.';
$string['privacy:metadata:reg:scholarshippercent'] = 'The scholarship, as a percentage of the fee.';
$string['privacy:metadata:reg:status'] = 'The status of the registration.';
$string['privacy:metadata:reg:totalfee'] = 'The total fee of the program.';
$string['privacy:metadata:reg:userid'] = 'The student the registration belongs to.';
$string['privacy:metadata:studentzohoid'] = 'The Zoho id of the student record.';
$string['privacy:metadata:timemodified'] = 'When the row was last written by the sync.';
$string['privacy:metadata:zmsync'] = 'Enrolment and grade changes are sent to the college\'s zmsync service, which copies them into the college\'s Zoho CRM. The dashboard data itself comes from Zoho CRM: deleting it here does not delete it there, and the next sync writes it again unless it is also deleted in Zoho CRM.';
$string['privacy:metadata:zmsync:courseid'] = 'The course of the enrolment or grade.';
$string['privacy:metadata:zmsync:eventname'] = 'What changed (enrolment created, updated or deleted; grade updated).';
$string['privacy:metadata:zmsync:grade'] = 'The course total grade.';
$string['privacy:metadata:zmsync:timecreated'] = 'When the change happened.';
$string['privacy:metadata:zmsync:userid'] = 'The user id of the student.';
$string['privacy:path:grades'] = 'BTEC grades';
$string['privacy:path:payments'] = 'Payments';
$string['privacy:path:registrations'] = 'Registrations';
$string['program'] = 'Program';
$string['recordedlevel'] = 'Recorded level';
$string['registrationdate'] = 'Registered on';
$string['remaining'] = 'Remaining';
$string['scholarship'] = 'Scholarship';
$string['searchresults'] = 'Matching students';
$string['section:academics'] = 'Academics';
$string['section:finance'] = 'Finance summary';
$string['section:grades'] = 'BTEC grades';
$string['section:payments'] = 'Payment history';
$string['section:profile'] = 'Profile';
$string['settings:currencyformat'] = 'Currency format';
$string['settings:currencyformat_code'] = 'Currency code (GBP 15,000.00)';
$string['settings:currencyformat_desc'] = 'How amounts are shown. With a symbol, each currency shows its own symbol (£ for GBP, € for EUR, $ for USD) whatever the user\'s language, and the digits follow the user\'s language when PHP has the intl extension. Currencies without a symbol in English show their code.';
$string['settings:currencyformat_symbol'] = 'The currency\'s own symbol (£15,000.00)';
$string['settings:display'] = 'Display';
$string['settings:events'] = 'Events to zmsync';
$string['settings:events_desc'] = 'Enrolment and course-total grade changes are sent, signed, to the zmsync receiver by a background task. Leave the URL empty to send nothing.';
$string['settings:hmacsecret'] = 'Signing secret';
$string['settings:hmacsecret_desc'] = 'The shared secret for the X-Moodle-Signature header (HMAC-SHA256 of the body). It must equal MOODLE_WEBHOOK_HMAC_SECRET on the zmsync side.';
$string['settings:receiverurl'] = 'Receiver URL';
$string['settings:receiverurl_desc'] = 'Base URL of the zmsync receiver, e.g. https://sync.example.edu/v1/events/moodle. Events are posted to /enrollment and /grade under it.';
$string['settings:showacademics'] = 'Show academics';
$string['settings:showacademics_desc'] = 'Show the student\'s registrations and programs.';
$string['settings:showfinance'] = 'Show finance summary';
$string['settings:showfinance_desc'] = 'Show total fee, scholarship, net amount and total paid.';
$string['settings:showgrades'] = 'Show BTEC grades';
$string['settings:showgrades_desc'] = 'Show the BTEC level per unit.';
$string['settings:showpayments'] = 'Show payment history';
$string['settings:showpayments_desc'] = 'Show each payment with its date, amount and status.';
$string['settings:showprofile'] = 'Show profile';
$string['settings:showprofile_desc'] = 'Show the student\'s name, email, student ID and program.';
$string['settings:showremainingbalance'] = 'Show remaining balance';
$string['settings:showremainingbalance_desc'] = 'Show the amount still to pay in the finance summary.';
$string['settings:skipsyncchanges'] = 'Do not send the sync\'s own changes';
$string['settings:skipsyncchanges_desc'] = 'Enrolments and grades changed through a web service by a user holding the capability local/student_dashboard:manage (the zmsync sync user) are not sent to the receiver: zmsync made them and knows them already. Without this, a first sync of 1,500 students queues about 5,700 events. Site administrators do not count as the sync user.';
$string['settings:thresholddistinction'] = 'Distinction from (%)';
$string['settings:thresholdmerit'] = 'Merit from (%)';
$string['settings:thresholdpass'] = 'Pass from (%)';
$string['settings:thresholds'] = 'Grade thresholds';
$string['settings:thresholds_desc'] = 'A course total becomes a BTEC level by its percentage of the grade range; each threshold is inclusive. Keep them equal to the zmsync settings.';
$string['settings:visibility'] = 'Sections';
$string['settings:visibility_desc'] = 'Which sections of the dashboard students see.';
$string['student_dashboard:manage'] = 'Write the student dashboard data (web services for the sync)';
$string['student_dashboard:view'] = 'View own student dashboard';
$string['student_dashboard:viewall'] = 'View any student\'s dashboard';
$string['studentid'] = 'Student ID';
$string['task:sendevent'] = 'Send an event to zmsync';
$string['totalfee'] = 'Total fee';
$string['totalpaid'] = 'Total paid';
$string['unit'] = 'Unit';
$string['unknownunit'] = 'Unit not recorded';
$string['viewingstudent'] = 'Dashboard of {$a}';
$string['warning:duplicatezohoid'] = 'The Zoho id {$a->value} appears more than once in this request.';
$string['warning:invalidamount'] = 'Invalid amount in {$a->field}: "{$a->value}".';
$string['warning:invalidcourseid'] = 'Unknown course id {$a}.';
$string['warning:invalidcurrency'] = 'Invalid currency code "{$a->value}".';
$string['warning:invaliddate'] = 'Invalid date in {$a->field}: "{$a->value}" (expected YYYY-MM-DD).';
$string['warning:invalidgrade'] = 'Invalid grade "{$a->value}".';
$string['warning:invalidpercent'] = 'Invalid percentage in {$a->field}: "{$a->value}".';
$string['warning:invalidstatus'] = 'Invalid payment status "{$a->value}".';
$string['warning:invaliduserid'] = 'Unknown or deleted Moodle user id {$a->value}.';
$string['warning:invalidvalue'] = 'Invalid value in {$a->field}.';
$string['warning:invalidzohoid'] = 'Invalid Zoho id in {$a->field}: "{$a->value}".';
$string['warning:nopermissions'] = 'No permission to read course {$a}.';
